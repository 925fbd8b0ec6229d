;; table_fill: attacks the deadline with bulk table work. Command "fill" runs
;; table.fill over a 10,000-element table (the corpus's limit), forever: a
;; loop of a few instructions, each iteration 10,000 element writes. Unless
;; the gate charges table operations by their element count like memory ones,
;; the loop's checks come hundreds of milliseconds apart. "ok" succeeds.
(module
  (import "connhost_v1" "buffer_read" (func $buffer_read (param i32 i32) (result i32)))
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (table $t 10000 funcref)
  (memory (export "memory") 1)
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
      (table.fill $t (i32.const 0) (table.get $t (i32.const 0)) (table.size $t))
      (br $forever))
    (i32.const 0))
  (func $fill)
  (elem (table $t) (i32.const 0) func $fill)
)
