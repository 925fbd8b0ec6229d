;; memgrow: attacks host memory through linear memory. Command "grow" grows
;; memory a page at a time, filling each new page so the host must back it,
;; until memory.grow fails at the limit; then it traps (kind memory_limit).
;; "ok" succeeds.
(module
  (import "connhost_v1" "buffer_read" (func $buffer_read (param i32 i32) (result i32)))
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"result\":null}")
  (data (i32.const 16) "{\"result\":\"ok\"}")
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
  (func (export "connhost_call") (param $cmd i32) (param $args i32) (result i32)
    (local $page i32)
    (drop (call $buffer_read (i32.const 1024) (local.get $cmd)))
    (if (i32.eq (i32.load16_u (i32.const 1024)) (i32.const 0x6b6f))
      (then (drop (call $output (i32.const 16) (i32.const 15))) (return (i32.const 0))))
    (loop $more
      (local.set $page (memory.grow (i32.const 1)))
      (if (i32.eq (local.get $page) (i32.const -1)) (then unreachable))
      ;; Fill the new page so the host must back all of it.
      (memory.fill (i32.shl (local.get $page) (i32.const 16)) (i32.const 1) (i32.const 65536))
      (br $more))
    (i32.const 0))
)
