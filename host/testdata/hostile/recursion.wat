;; recursion: attacks the host's native stack. Command "recurse" recurses
;; without end and without a loop, so no loop check runs: only the gate's
;; call-stack budget stops it (kind trap) before wazero's own ceiling (~100
;; MB of native stack, more while it is copied) is reached. "ok" succeeds.
(module
  (import "connhost_v1" "buffer_read" (func $buffer_read (param i32 i32) (result i32)))
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"result\":null}")
  (data (i32.const 16) "{\"result\":\"ok\"}")
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
  (func $down (param $n i64) (result i64)
    (i64.add (call $down (i64.add (local.get $n) (i64.const 1))) (local.get $n)))
  (func (export "connhost_call") (param $cmd i32) (param $args i32) (result i32)
    (drop (call $buffer_read (i32.const 1024) (local.get $cmd)))
    (if (i32.eq (i32.load16_u (i32.const 1024)) (i32.const 0x6b6f))
      (then (drop (call $output (i32.const 16) (i32.const 15))) (return (i32.const 0))))
    (drop (call $down (i64.const 0)))
    (i32.const 0))
)
