package uploader

import (
	"context"
	"errors"
	"testing"
)

func TestEnsureCacheInfo(t *testing.T) {
	tests := []struct {
		name     string
		existing string // "" = none
		cfg      func(*Config)
		want     string // content afterwards
		wantErr  error
	}{
		{
			name: "created",
			want: "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n",
		},
		{
			name: "created with settings",
			cfg:  func(c *Config) { c.StoreDir, c.Priority, c.WantMassQuery = "/gnu/nix", 10, false },
			want: "StoreDir: /gnu/nix\nWantMassQuery: 0\nPriority: 10\n",
		},
		{
			name:     "kept",
			existing: "StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 30\n",
			want:     "StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 30\n",
		},
		{
			name:     "kept without StoreDir",
			existing: "WantMassQuery: 1\n",
			want:     "WantMassQuery: 1\n",
		},
		{
			name:     "other store",
			existing: "StoreDir: /gnu/store\nWantMassQuery: 1\n",
			want:     "StoreDir: /gnu/store\nWantMassQuery: 1\n",
			wantErr:  ErrStoreDirMismatch,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCache()
			if tt.existing != "" {
				c.set(cacheInfoKey, []byte(tt.existing))
			}
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			u := newTestUploader(t, cfg, c, &fakeStore{}, nil, nil)
			for range 2 { // idempotent
				err := u.EnsureCacheInfo(context.Background())
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
					t.Fatalf("EnsureCacheInfo() = %v, want %v", err, tt.wantErr)
				}
			}
			got, _ := c.object(cacheInfoKey)
			if string(got) != tt.want {
				t.Errorf("nix-cache-info %q, want %q", got, tt.want)
			}
			wantPuts := 0
			if tt.existing == "" {
				wantPuts = 1
				if ct := c.typeOf(cacheInfoKey); ct != "text/x-nix-cache-info" {
					t.Errorf("content type %q", ct)
				}
			}
			if n := c.attemptsOf(cacheInfoKey); n != wantPuts {
				t.Errorf("%d puts, want %d", n, wantPuts)
			}
		})
	}
}
