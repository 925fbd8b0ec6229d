;; badimports: imports a function from an unknown module, an unknown
;; connhost_v1 function and connhost_v1.output with the wrong signature.
(module
  (import "env" "abort" (func (param i32)))
  (import "connhost_v1" "teleport" (func (param i32 i32) (result i32)))
  (import "connhost_v1" "output" (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32) (i32.const 0))
  (func (export "connhost_call") (param i32 i32) (result i32) (i32.const 0))
)
