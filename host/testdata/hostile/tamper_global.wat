;; tamper_global: built with `wat2wasm --no-check`. The module defines no
;; global, yet its loop resets global 0: after instrumentation that is the
;; gate's work counter, so the loop would never reach a check. Refused at
;; load (kind incompatible); never instantiated.
(module
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"result\":null}")
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
  (func (export "connhost_call") (param i32 i32) (result i32)
    (loop $spin
      (global.set 0 (i32.const 0))
      (br $spin))
    (i32.const 0))
)
