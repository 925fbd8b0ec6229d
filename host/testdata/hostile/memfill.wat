;; memfill: attacks the deadline with bulk memory work. Command "fill" runs
;; memory.fill over the whole linear memory, forever: a loop of a few
;; instructions, each iteration megabytes of work. The gate charges a bulk
;; operation by its byte count, so the deadline stops it (kind timeout).
;; "ok" succeeds.
(module
  (import "connhost_v1" "buffer_read" (func $buffer_read (param i32 i32) (result i32)))
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 256)
  (data (i32.const 0) "{\"result\":null}")
  (data (i32.const 16) "{\"result\":\"ok\"}")
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
  (func (export "connhost_call") (param $cmd i32) (param $args i32) (result i32)
    (drop (call $buffer_read (i32.const 1024) (local.get $cmd)))
    (if (i32.eq (i32.load16_u (i32.const 1024)) (i32.const 0x6b6f))
      (then (drop (call $output (i32.const 16) (i32.const 15))) (return (i32.const 0))))
    (loop $forever
      (memory.fill (i32.const 0) (i32.const 0xab) (i32.shl (memory.size) (i32.const 16)))
      (br $forever))
    (i32.const 0))
)
