;; badjson: any command but "ok" outputs a malformed envelope.
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
    ;; Command "ok" (cmd_len 2, bytes "ok") succeeds.
    (drop (call $buffer_read (i32.const 1024) (local.get $cmd)))
    (if (i32.and (i32.eq (local.get $cmd) (i32.const 2))
                 (i32.eq (i32.load16_u (i32.const 1024)) (i32.const 0x6b6f)))
      (then (drop (call $output (i32.const 16) (i32.const 15))) (return (i32.const 0))))
    (drop (call $output (i32.const 64) (i32.const 9)))
    (i32.const 0))
  (data (i32.const 64) "{not json")
)
