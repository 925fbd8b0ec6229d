;; import_table_global: imports a table and a global from a module the host
;; does not provide ("env"). A plugin imports only functions of connhost_v1
;; and WASI: refused at load (kind incompatible) naming the import, not a
;; trap at instantiation.
(module
  (import "env" "table" (table 1 funcref))
  (import "env" "counter" (global i32))
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"result\":null}")
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
  (func (export "connhost_call") (param i32 i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
)
