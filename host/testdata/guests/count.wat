;; count: every call runs a 10,000,000-iteration loop, then outputs
;; {"result":"ok"}. It measures what WithCloseOnContextDone's termination
;; checks in loops cost a CPU-bound guest.
(module
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"result\":null}")
  (data (i32.const 16) "{\"result\":\"ok\"}")
  (global $sink (mut i32) (i32.const 0))
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
  (func (export "connhost_call") (param i32 i32) (result i32)
    (local $i i32)
    (local $acc i32)
    (local.set $i (i32.const 10000000))
    (loop $l
      (local.set $acc (i32.add (local.get $acc) (local.get $i)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $l (local.get $i)))
    (global.set $sink (local.get $acc))
    (drop (call $output (i32.const 16) (i32.const 15)))
    (i32.const 0))
)
