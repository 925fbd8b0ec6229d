;; spinner: every command logs "spinning", then writes to stdout forever,
;; 1,024 iovecs of 64 KiB per fd_write: a call in flight that only the
;; host's deadline and cancellation checks stop (wazero's own fd_write
;; walked every iovec and never looked at the context).
(module
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (import "connhost_v1" "log" (func $log (param i32 i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "{\"result\":null}")
  (data (i32.const 16) "spinning")
  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))
  (func (export "connhost_call") (param i32 i32) (result i32)
    (local $i i32)
    ;; iovecs at 65536: {ptr 0, len 65536} x 1024
    (loop $fill
      (i32.store (i32.add (i32.const 65536) (i32.mul (local.get $i) (i32.const 8))) (i32.const 0))
      (i32.store (i32.add (i32.const 65540) (i32.mul (local.get $i) (i32.const 8))) (i32.const 65536))
      (br_if $fill (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 1024))))
    (call $log (i32.const 1) (i32.const 16) (i32.const 8))
    (loop $l
      (drop (call $fd_write (i32.const 1) (i32.const 65536) (i32.const 1024) (i32.const 32)))
      (br $l))
    (i32.const 0)))
