package jsonwire

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

var doc2KB = func() []byte {
	obj := map[string]string{}
	for i := 0; len(obj) < 40; i++ {
		obj[fmt.Sprintf("field_%02d", i)] = strings.Repeat(string(rune('a'+i%26)), 36)
	}
	b, _ := json.Marshal(obj)
	return b
}()

func BenchmarkCheck(b *testing.B) {
	b.SetBytes(int64(len(doc2KB)))
	for b.Loop() {
		_ = Check(doc2KB)
	}
}

func BenchmarkAppendString(b *testing.B) {
	s := string(doc2KB)
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = AppendString(buf[:0], s, false)
	}
}
