;; tamper_export: built with `wat2wasm --no-check`. The module defines no
;; global, yet exports global 0: after instrumentation that is the gate's
;; work counter, handed out to whoever links the module. Refused at load
;; (kind incompatible); never instantiated.
(module
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"result\":null}")
  (export "fuel" (global 0))
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
  (func (export "connhost_call") (param i32 i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
)
