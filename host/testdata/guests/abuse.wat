;; abuse: breaks the ABI in ways the fault corpus does not. Command "ok"
;; succeeds; "oob" passes buffer_read a range outside memory; "noout" returns
;; without calling output; "twice" calls output twice; "ret1" returns 1.
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
  (func (export "connhost_call") (param $cmd i32) (param $args i32) (result i32)
    (local $c i32)
    (drop (call $buffer_read (i32.const 1024) (local.get $cmd)))
    (local.set $c (i32.load8_u (i32.const 1024)))
    ;; "oob": copy the staged bytes to the last 4 bytes of memory.
    (if (i32.eq (local.get $c) (i32.const 0x6f)) (then
      (if (i32.eq (i32.load8_u (i32.const 1025)) (i32.const 0x6f)) (then
        (drop (call $buffer_read (i32.const 65532) (i32.const 64)))
        (drop (call $output (i32.const 16) (i32.const 15)))
        (return (i32.const 0))))
      ;; "ok"
      (drop (call $output (i32.const 16) (i32.const 15)))
      (return (i32.const 0))))
    ;; "noout"
    (if (i32.eq (local.get $c) (i32.const 0x6e)) (then (return (i32.const 0))))
    ;; "twice"
    (if (i32.eq (local.get $c) (i32.const 0x74)) (then
      (drop (call $output (i32.const 16) (i32.const 15)))
      (drop (call $output (i32.const 16) (i32.const 15)))
      (return (i32.const 0))))
    ;; "ret1"
    (drop (call $output (i32.const 16) (i32.const 15)))
    (i32.const 1))
)
