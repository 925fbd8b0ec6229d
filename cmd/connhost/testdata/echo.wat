;; A minimal ABI v1 guest for the connhost CLI tests, with a static buffer:
;;   test-module → "ok"; fail → error envelope of kind failed;
;;   spin → loops forever (for deadlines); any other command → its args.
(module
  (import "connhost_v1" "buffer_read" (func $buffer_read (param i32 i32) (result i32)))
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (import "connhost_v1" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)

  (data (i32.const 0) "{\"result\":null}")                                              ;; 15 bytes
  (data (i32.const 16) "{\"result\":\"ok\"}")                                           ;; 15
  (data (i32.const 32) "test-module")                                                   ;; 11
  (data (i32.const 48) "{\"result\":")                                                  ;; 10
  (data (i32.const 64) "{\"error\":{\"kind\":\"failed\",\"message\":\"boom: remote said no\"}}") ;; 60
  (data (i32.const 128) "configured")                                                   ;; 10

  (global $staged i32 (i32.const 1024))  ;; where staged input is copied
  (global $out i32 (i32.const 32768))    ;; where the echo envelope is built

  (func (export "connhost_abi_version") (result i32) (i32.const 1))

  (func (export "connhost_configure") (param $len i32) (result i32)
    (call $log (i32.const 1) (i32.const 128) (i32.const 10))
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))

  ;; $eq compares n bytes at a and b.
  (func $eq (param $a i32) (param $b i32) (param $n i32) (result i32)
    (block $diff
      (loop $next
        (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
        (br_if $diff (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  (func (export "connhost_call") (param $cmd_len i32) (param $args_len i32) (result i32)
    (drop (call $buffer_read (global.get $staged) (i32.add (local.get $cmd_len) (local.get $args_len))))
    (if (i32.and (i32.eq (local.get $cmd_len) (i32.const 11))
                 (call $eq (global.get $staged) (i32.const 32) (i32.const 11)))
      (then
        (drop (call $output (i32.const 16) (i32.const 15)))
        (return (i32.const 0))))
    (if (i32.and (i32.eq (local.get $cmd_len) (i32.const 4))
                 (i32.eq (i32.load8_u (global.get $staged)) (i32.const 102))) ;; 'f'ail
      (then
        (drop (call $output (i32.const 64) (i32.const 60)))
        (return (i32.const 0))))
    (if (i32.and (i32.eq (local.get $cmd_len) (i32.const 4))
                 (i32.eq (i32.load8_u (global.get $staged)) (i32.const 115))) ;; 's'pin
      (then (loop $forever (br $forever))))
    ;; echo: {"result": ARGS }
    (memory.copy (global.get $out) (i32.const 48) (i32.const 10))
    (memory.copy (i32.add (global.get $out) (i32.const 10))
                 (i32.add (global.get $staged) (local.get $cmd_len))
                 (local.get $args_len))
    (i32.store8 (i32.add (global.get $out) (i32.add (i32.const 10) (local.get $args_len))) (i32.const 125)) ;; '}'
    (drop (call $output (global.get $out) (i32.add (local.get $args_len) (i32.const 11))))
    (i32.const 0)))
