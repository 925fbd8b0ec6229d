;; table_grow: attacks host memory at run time. Command "grow" grows a table
;; without a declared maximum by 5,000 elements an iteration, forever: the
;; gate lowers the maximum to the module limit, so growth stops there and the
;; call deadline ends the loop. Command "size" grows until refused and outputs
;; the table size reached; "ok" succeeds.
(module
  (import "connhost_v1" "buffer_read" (func $buffer_read (param i32 i32) (result i32)))
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (table $t 1 funcref)
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"result\":null}")
  (data (i32.const 16) "{\"result\":\"ok\"}")
  (data (i32.const 32) "{\"result\":")
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
  (func (export "connhost_call") (param $cmd i32) (param $args i32) (result i32)
    (local $n i32)
    (local $p i32)
    (drop (call $buffer_read (i32.const 1024) (local.get $cmd)))
    ;; "ok"
    (if (i32.eq (i32.load16_u (i32.const 1024)) (i32.const 0x6b6f))
      (then (drop (call $output (i32.const 16) (i32.const 15))) (return (i32.const 0))))
    ;; "size": grow until table.grow returns -1, then output the size.
    (if (i32.eq (i32.load8_u (i32.const 1024)) (i32.const 0x73))
      (then
        (loop $more
          (br_if $more (i32.ne (table.grow $t (ref.null func) (i32.const 5000)) (i32.const -1))))
        ;; Decimal digits of table.size, written backwards from offset 63.
        (local.set $n (table.size $t))
        (local.set $p (i32.const 64))
        (loop $digit
          (local.set $p (i32.sub (local.get $p) (i32.const 1)))
          (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
          (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
          (br_if $digit (local.get $n)))
        ;; {"result": then the digits then }, contiguous from offset 32+.
        (memory.copy (i32.sub (local.get $p) (i32.const 10)) (i32.const 32) (i32.const 10))
        (i32.store8 (i32.const 64) (i32.const 0x7d))
        (drop (call $output (i32.sub (local.get $p) (i32.const 10)) (i32.sub (i32.const 75) (local.get $p))))
        (return (i32.const 0))))
    ;; "grow": forever.
    (loop $forever
      (drop (table.grow $t (ref.null func) (i32.const 5000)))
      (br $forever))
    (i32.const 0))
)
