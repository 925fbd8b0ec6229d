;; table_huge: attacks host memory at instantiation with tables whose
;; initial size is 2^27 elements each (8 bytes an element in wazero: 1 GiB a
;; table) in a module of a few hundred bytes. The gate must refuse it at load.
(module
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (table 134217728 funcref)
  (table 134217728 funcref)
  (table 134217728 funcref)
  (table 134217728 funcref)
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
