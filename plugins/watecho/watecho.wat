;; watecho: connhost ABI v1 written by hand, with no allocator.
;;
;; Behaviour (the same as plugins/goecho):
;;   connhost_configure  logs "echo: configured" once, answers {"result":null}
;;   test-module         answers {"result":"ok"}
;;   echo                answers {"result":<the arguments object, verbatim>}
;;   anything else       answers a not_implemented error envelope
;;
;; Memory (2 pages, static):
;;   0 ..  1023   constant strings (data segments below)
;;   4096 .. 65535  IN: the staged input, command name then arguments
;;   65536 ..       OUT: {"result": followed by a copy of the arguments and }
(module
  (import "connhost_v1" "buffer_read" (func $buffer_read (param i32 i32) (result i32)))
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (import "connhost_v1" "log" (func $log (param i32 i32 i32)))

  (memory (export "memory") 2)

  (global $IN i32 (i32.const 4096))
  (global $IN_CAP i32 (i32.const 61440))
  (global $OUT i32 (i32.const 65536))

  (data (i32.const 0) "test-module")
  (data (i32.const 16) "echo")
  (data (i32.const 32) "{\"result\":null}")
  (data (i32.const 64) "{\"result\":\"ok\"}")
  (data (i32.const 96) "{\"error\":{\"kind\":\"not_implemented\",\"message\":\"watecho: unknown command\"}}")
  (data (i32.const 192) "{\"error\":{\"kind\":\"bad_request\",\"message\":\"watecho: input too large\"}}")
  (data (i32.const 288) "echo: configured")
  (data (i32.const 65536) "{\"result\":")

  (func (export "connhost_abi_version") (result i32)
    (i32.const 1))

  ;; The configure request is not needed, so it is never read.
  (func (export "connhost_configure") (param $len i32) (result i32)
    (call $log (i32.const 1) (i32.const 288) (i32.const 16))
    (drop (call $output (i32.const 32) (i32.const 15)))
    (i32.const 0))

  ;; $equal reports whether the $n bytes at $a equal the $m bytes at $b.
  (func $equal (param $a i32) (param $n i32) (param $b i32) (param $m i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $n) (local.get $m)) (then (return (i32.const 0))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $b) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 1))

  (func (export "connhost_call") (param $cmd_len i32) (param $args_len i32) (result i32)
    ;; Each length is checked alone first so that their sum cannot wrap.
    (if (i32.or (i32.gt_u (local.get $cmd_len) (global.get $IN_CAP))
          (i32.or (i32.gt_u (local.get $args_len) (global.get $IN_CAP))
                  (i32.gt_u (i32.add (local.get $cmd_len) (local.get $args_len)) (global.get $IN_CAP))))
      (then
        (drop (call $output (i32.const 192) (i32.const 69)))
        (return (i32.const 0))))
    (drop (call $buffer_read (global.get $IN) (i32.add (local.get $cmd_len) (local.get $args_len))))

    (if (call $equal (global.get $IN) (local.get $cmd_len) (i32.const 0) (i32.const 11))
      (then
        (drop (call $output (i32.const 64) (i32.const 15)))
        (return (i32.const 0))))

    (if (call $equal (global.get $IN) (local.get $cmd_len) (i32.const 16) (i32.const 4))
      (then
        ;; OUT already starts with {"result": ; append the arguments and }.
        (memory.copy
          (i32.add (global.get $OUT) (i32.const 10))
          (i32.add (global.get $IN) (local.get $cmd_len))
          (local.get $args_len))
        (i32.store8 (i32.add (global.get $OUT) (i32.add (i32.const 10) (local.get $args_len)))
          (i32.const 125)) ;; '}'
        (drop (call $output (global.get $OUT) (i32.add (local.get $args_len) (i32.const 11))))
        (return (i32.const 0))))

    (drop (call $output (i32.const 96) (i32.const 73)))
    (i32.const 0))
)
