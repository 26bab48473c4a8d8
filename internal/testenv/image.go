package testenv

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Images imported by ImportImages, usable with imagePullPolicy Never.
const (
	// BusyboxImage holds Debian's static busybox at /bin/busybox with a link
	// for every applet (sh, sleep, ...).
	BusyboxImage = "localhost/podlife/busybox:test"
	// PauseImage is the same layer, configured as containerd's sandbox image.
	PauseImage = "localhost/podlife/pause:test"
)

// busyboxLayer builds a layer tar: /bin/busybox plus applet symlinks.
func busyboxLayer(t testing.TB) []byte {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("read /bin/busybox (Debian package busybox-static; run `make tools`): %v", err)
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "tmp/", "etc/", "proc/", "sys/", "dev/"} {
		tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755})
	}
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))})
	tw.Write(bb)
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		tw.WriteHeader(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	passwd := []byte("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
	tw.WriteHeader(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(passwd))})
	tw.Write(passwd)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dockerArchive writes a docker-archive (docker save format) image tarball.
func dockerArchive(t testing.TB, path, ref string, layer []byte, cmd []string) {
	t.Helper()
	sum := sha256.Sum256(layer)
	diffID := "sha256:" + hex.EncodeToString(sum[:])
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Cmd": cmd, "Env": []string{"PATH=/bin"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	csum := sha256.Sum256(config)
	configName := hex.EncodeToString(csum[:]) + ".json"
	manifest, _ := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": []string{ref}, "Layers": []string{"layer.tar"}}})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, b := range map[string][]byte{configName: config, "layer.tar": layer, "manifest.json": manifest} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))})
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ImportImages builds BusyboxImage and PauseImage locally and imports them
// into containerd's k8s.io namespace (no registry involved).
func (c *Containerd) ImportImages(t testing.TB) {
	t.Helper()
	layer := busyboxLayer(t)
	for ref, cmd := range map[string][]string{BusyboxImage: {"/bin/sh"}, PauseImage: {"/bin/sleep", "2147483647"}} {
		path := fmt.Sprintf("%s/%x.tar", c.Dir, sha256.Sum256([]byte(ref)))
		dockerArchive(t, path, ref, layer, cmd)
		out, err := exec.Command(Bin(t, "ctr"), "--address", c.Socket, "-n", "k8s.io", "images", "import", path).CombinedOutput()
		if err != nil {
			t.Fatalf("ctr images import %s: %v\n%s", ref, err, out)
		}
	}
}
