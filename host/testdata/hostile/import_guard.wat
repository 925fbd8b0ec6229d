;; import_guard: imports the host's check function (connhost_guard.check),
;; which exists in every plugin's runtime for the gate's instrumentation,
;; hoping to call it or to shadow it. Refused at load (kind incompatible).
(module
  (import "connhost_guard" "check" (func $check (param i32)))
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"result\":null}")
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
  (func (export "connhost_call") (param i32 i32) (result i32)
    (call $check (i32.const 1))
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
)
