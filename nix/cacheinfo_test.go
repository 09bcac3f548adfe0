package nix

import "testing"

func TestCacheInfoRoundTrip(t *testing.T) {
	in := CacheInfo{StoreDir: "/nix/store", WantMassQuery: true, Priority: 40}
	if got := in.String(); got != "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n" {
		t.Fatalf("String() = %q", got)
	}
	out, err := ParseCacheInfo(in.String())
	if err != nil || out != in {
		t.Fatalf("ParseCacheInfo(String()) = %+v, %v; want %+v", out, err, in)
	}
}

func TestParseCacheInfo(t *testing.T) {
	tests := []struct {
		text    string
		want    CacheInfo
		wantErr bool
	}{
		{text: "StoreDir: /nix/store\n", want: CacheInfo{StoreDir: "/nix/store", Priority: 50}},
		{text: "StoreDir: /gnu/store\nWantMassQuery: 0\nPriority: 10\nOther: x\n", want: CacheInfo{StoreDir: "/gnu/store", Priority: 10}},
		{text: "WantMassQuery: 1\n", wantErr: true},
		{text: "StoreDir: /nix/store\nWantMassQuery: yes\n", wantErr: true},
		{text: "StoreDir: /nix/store\nPriority: high\n", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseCacheInfo(tt.text)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseCacheInfo(%q) = %+v, %v; want %+v, error %v", tt.text, got, err, tt.want, tt.wantErr)
		}
	}
}
