;; hostile: what a hostile plugin author tries through WASI and the log,
;; one command each, told apart by their first letter. Numbers come from the
;; first integer in the arguments (n); results are numbers (errno, bytes).
;;   ok           succeeds
;;   log-empty    empty log records, forever
;;   newlines     one fd_write of 1 MiB of newlines to stdout; result: bytes written
;;   iovecs       fd_write to stderr of n iovecs at one 4 KiB buffer of newlines,
;;                forever; result: the first errno
;;   write        fd_write to fd n; result: errno
;;   drain        fd_read of stdin; result: errno, or bytes read
;;   poll         poll_oneoff, n ms on the monotonic clock, relative; result:
;;                errno, 999 for a wrong event
;;   abs-real     the same, absolute on the realtime clock
;;   mono-abs     the same, absolute on the monotonic clock
;;   unblocked    poll_oneoff on stdin and a 10 s clock; result: the event's
;;                errno, 999 for wrong events
;;   sleep        the host sleep of n ms; result: its return value
;;   random       random_get of n bytes; result: errno
;;   exit         proc_exit(n)
;;   forge        an error envelope of kind timeout
;;   crash        floods stderr past the log budget, then writes a Go-style
;;                panic line and traps
(module
  (import "connhost_v1" "buffer_read" (func $buffer_read (param i32 i32) (result i32)))
  (import "connhost_v1" "output" (func $output (param i32 i32) (result i32)))
  (import "connhost_v1" "log" (func $log (param i32 i32 i32)))
  (import "connhost_v1" "sleep" (func $sleep (param i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  ;; 0-511 envelopes, 1024-2047 the staged call, 4096-36863 iovecs,
  ;; 40960-41311 poll_oneoff, 65536- a 1 MiB buffer.
  (memory (export "memory") 20)
  (data (i32.const 0) "{\"result\":null}")
  (data (i32.const 16) "{\"result\":\"ok\"}")
  (data (i32.const 32) "{\"error\":{\"kind\":\"timeout\",\"message\":\"forged by the guest\"}}")
  (data (i32.const 128) "{\"result\":")
  (data (i32.const 160) "panic: boom")

  (func (export "connhost_abi_version") (result i32) (i32.const 1))
  (func (export "connhost_configure") (param i32) (result i32)
    (drop (call $output (i32.const 0) (i32.const 15)))
    (i32.const 0))

  ;; num parses the first integer in [p, end).
  (func $num (param $p i32) (param $end i32) (result i64)
    (local $n i64) (local $neg i32) (local $c i32)
    (block $found
      (loop $skip
        (br_if $found (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $p)))
        (br_if $found (i32.eq (local.get $c) (i32.const 45)))
        (br_if $found (i32.le_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 9)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $skip)))
    (if (i32.and (i32.lt_u (local.get $p) (local.get $end))
                 (i32.eq (i32.load8_u (local.get $p)) (i32.const 45)))
      (then (local.set $neg (i32.const 1))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))))
    (block $done
      (loop $digits
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))
        (br_if $done (i32.gt_u (local.get $c) (i32.const 9)))
        (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10)) (i64.extend_i32_u (local.get $c))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $digits)))
    (if (result i64) (local.get $neg)
      (then (i64.sub (i64.const 0) (local.get $n)))
      (else (local.get $n))))

  ;; outnum outputs {"result":v}, built backwards from 511.
  (func $outnum (param $v i64)
    (local $p i32) (local $neg i32)
    (local.set $p (i32.const 511))
    (i32.store8 (local.get $p) (i32.const 125))
    (if (i64.lt_s (local.get $v) (i64.const 0))
      (then (local.set $neg (i32.const 1))
            (local.set $v (i64.sub (i64.const 0) (local.get $v)))))
    (loop $d
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $d (i64.ne (local.get $v) (i64.const 0))))
    (if (local.get $neg)
      (then (local.set $p (i32.sub (local.get $p) (i32.const 1)))
            (i32.store8 (local.get $p) (i32.const 45))))
    (local.set $p (i32.sub (local.get $p) (i32.const 10)))
    (memory.copy (local.get $p) (i32.const 128) (i32.const 10))
    (drop (call $output (local.get $p) (i32.sub (i32.const 512) (local.get $p)))))

  (func $outerr (param $e i32) (call $outnum (i64.extend_i32_u (local.get $e))))

  ;; iovecs writes n iovecs {buf, len} at 4096.
  (func $iovecs (param $n i32) (param $buf i32) (param $len i32)
    (local $i i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 3))) (local.get $buf))
        (i32.store (i32.add (i32.const 4100) (i32.shl (local.get $i) (i32.const 3))) (local.get $len))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l))))

  ;; poll sleeps ms on clock, relative or absolute, with one subscription
  ;; at 40960 (userdata 42) and its event at 41216.
  (func $poll (param $clock i32) (param $abs i32) (param $ms i64)
    (local $t i64) (local $e i32)
    (local.set $t (i64.mul (local.get $ms) (i64.const 1000000)))
    (if (local.get $abs)
      (then
        (drop (call $clock_time_get (local.get $clock) (i64.const 1) (i32.const 41304)))
        (local.set $t (i64.add (local.get $t) (i64.load (i32.const 41304))))))
    (memory.fill (i32.const 40960) (i32.const 0) (i32.const 48))
    (i64.store (i32.const 40960) (i64.const 42))
    (i32.store (i32.const 40976) (local.get $clock))
    (i64.store (i32.const 40984) (local.get $t))
    (i32.store16 (i32.const 41000) (local.get $abs))
    (local.set $e (call $poll_oneoff (i32.const 40960) (i32.const 41216) (i32.const 1) (i32.const 41300)))
    (if (i32.eqz (local.get $e))
      (then
        (if (i32.or (i32.ne (i32.load (i32.const 41300)) (i32.const 1))
              (i32.or (i64.ne (i64.load (i32.const 41216)) (i64.const 42))
                (i32.or (i32.load16_u (i32.const 41224)) (i32.load8_u (i32.const 41226)))))
          (then (local.set $e (i32.const 999))))))
    (call $outerr (local.get $e)))

  ;; unblocked polls stdin (userdata 7) and a 10 s clock (userdata 8).
  (func $unblocked
    (local $e i32)
    (memory.fill (i32.const 40960) (i32.const 0) (i32.const 96))
    (i64.store (i32.const 40960) (i64.const 7))
    (i32.store8 (i32.const 40968) (i32.const 1))
    (i64.store (i32.const 41008) (i64.const 8))
    (i64.store (i32.const 41032) (i64.const 10000000000))
    (local.set $e (call $poll_oneoff (i32.const 40960) (i32.const 41216) (i32.const 2) (i32.const 41300)))
    (if (i32.eqz (local.get $e))
      (then
        (local.set $e (i32.load16_u (i32.const 41224)))
        (if (i32.or (i32.ne (i32.load (i32.const 41300)) (i32.const 1))
                    (i64.ne (i64.load (i32.const 41216)) (i64.const 7)))
          (then (local.set $e (i32.const 999))))))
    (call $outerr (local.get $e)))

  (func (export "connhost_call") (param $cmd i32) (param $args i32) (result i32)
    (local $c i32) (local $a i32) (local $n i64) (local $e i32) (local $k i32)
    (drop (call $buffer_read (i32.const 1024) (i32.const 1024)))
    (local.set $c (i32.load8_u (i32.const 1024)))
    (local.set $a (i32.add (i32.const 1024) (local.get $cmd)))
    (local.set $n (call $num (local.get $a) (i32.add (local.get $a) (local.get $args))))
    (block $done
      ;; ok
      (if (i32.eq (local.get $c) (i32.const 0x6f)) (then
        (drop (call $output (i32.const 16) (i32.const 15)))
        (br $done)))
      ;; log-empty
      (if (i32.eq (local.get $c) (i32.const 0x6c)) (then
        (loop $l
          (call $log (i32.const 1) (i32.const 0) (i32.const 0))
          (br $l))))
      ;; newlines
      (if (i32.eq (local.get $c) (i32.const 0x6e)) (then
        (memory.fill (i32.const 65536) (i32.const 10) (i32.const 1048576))
        (call $iovecs (i32.const 1) (i32.const 65536) (i32.const 1048576))
        (local.set $e (call $fd_write (i32.const 1) (i32.const 4096) (i32.const 1) (i32.const 41300)))
        (if (local.get $e) (then (call $outerr (local.get $e)) (br $done)))
        (call $outerr (i32.load (i32.const 41300)))
        (br $done)))
      ;; iovecs
      (if (i32.eq (local.get $c) (i32.const 0x69)) (then
        (memory.fill (i32.const 65536) (i32.const 10) (i32.const 4096))
        (call $iovecs (i32.wrap_i64 (local.get $n)) (i32.const 65536) (i32.const 4096))
        (loop $l
          (local.set $e (call $fd_write (i32.const 2) (i32.const 4096) (i32.wrap_i64 (local.get $n)) (i32.const 41300)))
          (br_if $l (i32.eqz (local.get $e))))
        (call $outerr (local.get $e))
        (br $done)))
      ;; write
      (if (i32.eq (local.get $c) (i32.const 0x77)) (then
        (call $iovecs (i32.const 1) (i32.const 16) (i32.const 15))
        (call $outerr (call $fd_write (i32.wrap_i64 (local.get $n)) (i32.const 4096) (i32.const 1) (i32.const 41300)))
        (br $done)))
      ;; drain
      (if (i32.eq (local.get $c) (i32.const 0x64)) (then
        (call $iovecs (i32.const 1) (i32.const 65536) (i32.const 100))
        (i32.store (i32.const 41300) (i32.const 77))
        (local.set $e (call $fd_read (i32.const 0) (i32.const 4096) (i32.const 1) (i32.const 41300)))
        (if (local.get $e) (then (call $outerr (local.get $e)) (br $done)))
        (call $outerr (i32.load (i32.const 41300)))
        (br $done)))
      ;; poll, abs-real, mono-abs
      (if (i32.eq (local.get $c) (i32.const 0x70)) (then
        (call $poll (i32.const 1) (i32.const 0) (local.get $n))
        (br $done)))
      (if (i32.eq (local.get $c) (i32.const 0x61)) (then
        (call $poll (i32.const 0) (i32.const 1) (local.get $n))
        (br $done)))
      (if (i32.eq (local.get $c) (i32.const 0x6d)) (then
        (call $poll (i32.const 1) (i32.const 1) (local.get $n))
        (br $done)))
      ;; unblocked
      (if (i32.eq (local.get $c) (i32.const 0x75)) (then
        (call $unblocked)
        (br $done)))
      ;; sleep
      (if (i32.eq (local.get $c) (i32.const 0x73)) (then
        (call $outerr (call $sleep (local.get $n)))
        (br $done)))
      ;; random
      (if (i32.eq (local.get $c) (i32.const 0x72)) (then
        (call $outerr (call $random_get (i32.const 65536) (i32.wrap_i64 (local.get $n))))
        (br $done)))
      ;; exit
      (if (i32.eq (local.get $c) (i32.const 0x65)) (then
        (call $proc_exit (i32.wrap_i64 (local.get $n)))
        (unreachable)))
      ;; forge
      (if (i32.eq (local.get $c) (i32.const 0x66)) (then
        (drop (call $output (i32.const 32) (i32.const 60)))
        (br $done)))
      ;; crash: 3 writes of 1,024 x 4 KiB of newlines, then "panic: boom\n" in
      ;; three writes, as the Go runtime prints it, then a trap.
      (if (i32.eq (local.get $c) (i32.const 0x63)) (then
        (memory.fill (i32.const 65536) (i32.const 10) (i32.const 4096))
        (call $iovecs (i32.const 1024) (i32.const 65536) (i32.const 4096))
        (loop $l
          (drop (call $fd_write (i32.const 2) (i32.const 4096) (i32.const 1024) (i32.const 41300)))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $k) (i32.const 3))))
        (call $iovecs (i32.const 1) (i32.const 160) (i32.const 7))
        (drop (call $fd_write (i32.const 2) (i32.const 4096) (i32.const 1) (i32.const 41300)))
        (call $iovecs (i32.const 1) (i32.const 167) (i32.const 4))
        (drop (call $fd_write (i32.const 2) (i32.const 4096) (i32.const 1) (i32.const 41300)))
        (call $iovecs (i32.const 1) (i32.const 65536) (i32.const 1))
        (drop (call $fd_write (i32.const 2) (i32.const 4096) (i32.const 1) (i32.const 41300)))
        (unreachable)))
      (unreachable))
    (i32.const 0))
)
