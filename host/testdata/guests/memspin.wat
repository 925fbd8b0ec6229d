;; memspin: every command writes its linear memory in a loop forever, so a
;; host that released the memory under a running call would crash.
(module
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 4)
  (data (i32.const 0) "{\"result\":null}")
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
  (func (export "connhost_call") (param i32 i32) (result i32)
    (local $p i32)
    (loop $l
      (i32.store (i32.add (i32.const 64) (local.get $p)) (local.get $p))
      (local.set $p (i32.and (i32.add (local.get $p) (i32.const 4096)) (i32.const 0x3ffff)))
      (br $l))
    (i32.const 0)))
