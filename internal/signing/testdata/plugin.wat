;; A minimal module to sign: signing treats plugins as bytes plus the
;; manifest the tests embed, so it needs no exports beyond memory.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "connhost signing test"))
