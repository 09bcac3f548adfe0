package vt

import "testing"

func TestScreen(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		wrapped        bool
	}{
		{"text and newlines", "ab\ncd\n", "ab\ncd", false},
		{"carriage return overwrites", "hello\rHE", "HEllo", false},
		{"erase to end of line", "hello\r\x1b[Kbye", "bye", false},
		{"cursor up and erase below", "1\n2\n\x1b[1A\r\x1b[Jx\n", "1\nx", false},
		{"wrap", "abcdefg", "abcde\nfg", true},
		{"scroll", "1\n2\n3\n4\n5", "3\n4\n5", false},
		{"utf-8 split across writes", "h\xc3", "hé", false},
		{"other sequences ignored", "\x1b[1mbold\x1b[0m", "bold", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(5, 3)
			if tc.name == "utf-8 split across writes" {
				s.Write([]byte(tc.in))
				s.Write([]byte{0xa9})
			} else {
				s.Write([]byte(tc.in))
			}
			if got := s.String(); got != tc.want {
				t.Errorf("screen %q, want %q", got, tc.want)
			}
			if s.Wrapped() != tc.wrapped {
				t.Errorf("wrapped %v, want %v", s.Wrapped(), tc.wrapped)
			}
		})
	}
}
