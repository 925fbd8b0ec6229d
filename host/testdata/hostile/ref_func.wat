;; ref_func: attacks host memory through wazero's ref.func. Command "refs"
;; runs ref.func in a loop, forever: wazero allocates a host object for each
;; execution and keeps it until the module instance closes (~40 bytes an
;; execution, over 100 MB a second), so host memory grows for as long as
;; the call runs, and across calls. The gate refuses ref.func in code at
;; load (kind incompatible).
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
    (drop (call $buffer_read (i32.const 1024) (local.get $cmd)))
    (if (i32.eq (i32.load16_u (i32.const 1024)) (i32.const 0x6b6f))
      (then (drop (call $output (i32.const 16) (i32.const 15))) (return (i32.const 0))))
    (loop $forever
      (drop (ref.func $target))
      (br $forever))
    (i32.const 0))
  (func $target)
  (elem declare func $target)
)
