package nix

import (
	"strings"
	"testing"
)

// TestRealisationNix235Vectors checks the build trace layout against the
// test data of Nix 2.35 (src/libstore-tests/data/realisation): the
// fingerprint of with-signature.json and the signature Nix makes of it
// with its test key (with-signature-sig.json).
func TestRealisationNix235Vectors(t *testing.T) {
	r := Realisation{
		DrvPath:    "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv",
		OutputName: "foo",
		OutPath:    "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv",
	}
	const fingerprint = `{"key":{"drvPath":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv","outputName":"foo"},"value":{"outPath":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv"}}`
	if got := r.Fingerprint(); got != fingerprint {
		t.Fatalf("fingerprint\n got %s\nwant %s", got, fingerprint)
	}
	key, err := ParseSecretKey("test-key:tU7tTvLcScf8pmz/eTV0BEtLmRsPpZfKaRcd0nCN+pysBZPHSeg61/u2oc7mIOewfuAY1V1BiX32homTaDJ2Jw==")
	if err != nil {
		t.Fatal(err)
	}
	r.Sign(key)
	const sig = "test-key:ZE30UrOh26/EYvUaczjJtz6c4WcRYke6IEhDNN5TiFRF6Uu+H8lHofponlhfZxDDrCUlfstS/vtv3Xm2F6M/AA=="
	if len(r.TraceSignatures) != 1 || r.TraceSignatures[0] != sig {
		t.Fatalf("signatures %v, want [%s]", r.TraceSignatures, sig)
	}
	if len(r.Signatures) != 0 {
		t.Errorf("no id, yet Nix 2.8 signatures %v", r.Signatures)
	}
	if !r.VerifyTraceSignature(key.Public(), sig) {
		t.Error("own signature does not verify")
	}
	const value = `{"outPath":"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv","signatures":[{"keyName":"test-key","sig":"ZE30UrOh26/EYvUaczjJtz6c4WcRYke6IEhDNN5TiFRF6Uu+H8lHofponlhfZxDDrCUlfstS/vtv3Xm2F6M/AA=="}]}`
	if got := string(r.TraceJSON()); got != value {
		t.Errorf("value\n got %s\nwant %s", got, value)
	}
	if got, want := r.TraceKey(), "build-trace-v2/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv/foo.doi"; got != want {
		t.Errorf("key %s, want %s", got, want)
	}
	if r.KeyV1() != "" {
		t.Errorf("KeyV1 %q without an id", r.KeyV1())
	}
}

// TestRealisationNix28 checks the Nix 2.8 layout against what Nix 2.8's
// `nix realisation info --json` prints for a CA derivation it built, the
// same serialisation as its realisations/<id>.doi files.
func TestRealisationNix28(t *testing.T) {
	r := Realisation{
		DrvPath:    "zy901pqr1dx2lvz0m02diblalih8k5w2-ca-test-5901.drv",
		OutputName: "out",
		OutPath:    "x4aqmbbmgz6nn1inamd45d097k3j82la-ca-test-5901",
		ID:         "sha256:775297e6536df2ac3b7a2deb9cdc32d77c9438d722c5fdbae21d0ac6a4ccdc4e!out",
		Dependent:  map[string]string{},
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	const printed = `{"dependentRealisations":{},"id":"sha256:775297e6536df2ac3b7a2deb9cdc32d77c9438d722c5fdbae21d0ac6a4ccdc4e!out","outPath":"x4aqmbbmgz6nn1inamd45d097k3j82la-ca-test-5901","signatures":[]}`
	if got := string(r.JSONV1()); got != printed {
		t.Errorf("JSON\n got %s\nwant %s", got, printed)
	}
	if got, want := r.FingerprintV1(), strings.Replace(printed, `,"signatures":[]`, "", 1); got != want {
		t.Errorf("fingerprint\n got %s\nwant %s", got, want)
	}
	if got, want := r.KeyV1(), "realisations/sha256:775297e6536df2ac3b7a2deb9cdc32d77c9438d722c5fdbae21d0ac6a4ccdc4e!out.doi"; got != want {
		t.Errorf("key %s, want %s", got, want)
	}
	key, err := GenerateKey("cache-1")
	if err != nil {
		t.Fatal(err)
	}
	r.Sign(key)
	r.Sign(key)
	if len(r.Signatures) != 1 || len(r.TraceSignatures) != 1 {
		t.Fatalf("signatures %v / %v, want one of each", r.Signatures, r.TraceSignatures)
	}
	if !key.Public().Verify(r.FingerprintV1(), r.Signatures[0]) {
		t.Error("Nix 2.8 signature does not verify")
	}
	if !strings.Contains(string(r.JSONV1()), `"signatures":["cache-1:`) {
		t.Errorf("JSON %s lacks the signature", r.JSONV1())
	}
}

func TestRealisationValidate(t *testing.T) {
	good := Realisation{DrvPath: "x-a.drv", OutputName: "out", OutPath: "y-a", ID: "sha256:ab!out"}
	for _, edit := range []func(*Realisation){
		func(r *Realisation) { r.DrvPath = "x-a" },
		func(r *Realisation) { r.DrvPath = "/nix/store/x-a.drv" },
		func(r *Realisation) { r.OutputName = "" },
		func(r *Realisation) { r.OutPath = "/nix/store/y-a" },
		func(r *Realisation) { r.ID = "sha256:ab!dev" },
		func(r *Realisation) { r.ID = "md5:ab!out" },
	} {
		r := good
		edit(&r)
		if r.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", r)
		}
	}
	if err := good.Validate(); err != nil {
		t.Error(err)
	}
}
