;; memory_initial: declares 3,000 pages (187.5 MiB) of initial memory, above
;; the default 128 MiB limit: refused at load under that limit, naming it;
;; loads under a limit that fits it (the pages are reserved, not touched).
(module
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 3000)
  (data (i32.const 0) "{\"result\":null}")
  (data (i32.const 16) "{\"result\":\"ok\"}")
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
  (func (export "connhost_call") (param i32 i32) (result i32)
    (drop (call $output (i32.const 16) (i32.const 15)))
    (i32.const 0))
)
