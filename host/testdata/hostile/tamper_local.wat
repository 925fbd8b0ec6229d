;; tamper_local: built with `wat2wasm --no-check`. connhost_call has two
;; parameters and no locals, yet its loop resets local 2: after
;; instrumentation that is the gate's loop counter, so the loop would never
;; reach a check. Refused at load (kind incompatible); never instantiated.
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
      (local.set 2 (i32.const 0))
      (br $spin))
    (i32.const 0))
)
