;; tamper_call: built with `wat2wasm --no-check`. The module has 1 import and
;; 3 defined functions (indices 0-3), yet connhost_call calls function 4:
;; after instrumentation, which inserts the check import at index 1, index 4
;; is connhost_call itself, a valid call. Refused at load (kind
;; incompatible); never instantiated.
(module
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"result\":null}")
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
  (func (export "connhost_call") (param i32 i32) (result i32)
    (call 4 (local.get 0) (local.get 1)))
)
