package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podlife/podlife/internal/testenv"
)

const testRef = "ghcr.io/podlife/podlife:image-test"

// buildImage runs the image builder as `make image` does and returns the
// tarball and what it printed.
func buildImage(t *testing.T, out string, extra ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	args := append([]string{"-C", "../..", "-out", out, "-ref", testRef, "-version", "image-test"}, extra...)
	if code := runArgs(args, &stdout, &stderr); code != 0 {
		t.Fatalf("image %v: exit %d: %s", args, code, stderr.String())
	}
	t.Logf("built in %s:\n%s", time.Since(start).Round(100*time.Millisecond), stdout.String())
	return stdout.String()
}

// Bad command lines are refused with exit code 2 and one line.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-platforms", "amd64"}, `image: -platforms: "amd64": want OS/ARCH[/VARIANT]`},
		{[]string{"-ref", "podlife"}, `image: -ref "podlife": want REPOSITORY:TAG`},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
	} {
		var stdout, stderr bytes.Buffer
		if code := runArgs(tc.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// The image: a multi-platform OCI index in an OCI layout tarball, each
// image a static binary for its platform on distroless's users, run as
// 65532 with entrypoint /podlife; the same tarball is a docker-archive of
// linux/amd64; a second build is byte-identical; and the real containerd
// imports it with `ctr images import`, sees the user and the entrypoint
// through CRI, and runs it.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds podlife for linux/amd64 and linux/arm64 and imports the image into a real containerd: not in -short")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "podlife-image.tar")
	buildImage(t, out)

	t.Run("OCI layout with a two-platform index", func(t *testing.T) {
		lay := filepath.Join(dir, "layout")
		untar(t, out, lay)
		root, err := layout.ImageIndexFromPath(lay)
		if err != nil {
			t.Fatal(err)
		}
		rm, err := root.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(rm.Manifests) != 1 || rm.Manifests[0].Annotations["io.containerd.image.name"] != testRef ||
			rm.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "image-test" {
			t.Fatalf("index.json: %+v", rm.Manifests)
		}
		idx, err := root.ImageIndex(rm.Manifests[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if im.MediaType != "application/vnd.oci.image.index.v1+json" {
			t.Errorf("index media type %s", im.MediaType)
		}
		var platforms []string
		for _, d := range im.Manifests {
			platforms = append(platforms, d.Platform.String())
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, d.Platform, img)
		}
		if want := []string{"linux/amd64", "linux/arm64/v8"}; !slices.Equal(platforms, want) {
			t.Fatalf("platforms %v, want %v", platforms, want)
		}
	})

	t.Run("docker-archive of linux/amd64 in the same tarball", func(t *testing.T) {
		img, err := tarball.ImageFromPath(out, nil)
		if err != nil {
			t.Fatalf("read as docker-archive (docker load's manifest.json): %v", err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != "amd64" || cf.Config.User != User {
			t.Fatalf("docker-archive config: %s %q", cf.Architecture, cf.Config.User)
		}
		checkImage(t, &v1.Platform{OS: "linux", Architecture: "amd64"}, img)
	})

	t.Run("reproducible", func(t *testing.T) {
		again := filepath.Join(dir, "again.tar")
		buildImage(t, again)
		if a, b := fileSum(t, out), fileSum(t, again); a != b {
			t.Fatalf("two builds differ: %s, %s", a, b)
		}
	})

	t.Run("ctr images import into the real containerd", func(t *testing.T) {
		ctd := testenv.StartContainerd(t)
		ctr := func(args ...string) string {
			t.Helper()
			cmd := exec.Command(testenv.Bin(t, "ctr"), append([]string{"--address", ctd.Socket, "-n", "k8s.io"}, args...)...)
			b, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, b)
			}
			return string(b)
		}
		t.Logf("ctr images import:\n%s", ctr("images", "import", out))
		if ls := ctr("images", "ls", "-q"); !strings.Contains(ls, testRef) {
			t.Fatalf("ctr images ls: %s", ls)
		}
		conn, err := grpc.NewClient("unix://"+ctd.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		st, err := runtimeapi.NewImageServiceClient(conn).ImageStatus(ctx, &runtimeapi.ImageStatusRequest{
			Image: &runtimeapi.ImageSpec{Image: testRef}, Verbose: true})
		if err != nil || st.Image == nil {
			t.Fatalf("CRI ImageStatus %s: %v (%v)", testRef, err, st)
		}
		if st.Image.GetUid().GetValue() != 65532 || !strings.Contains(st.Info["info"], `"Entrypoint":["/podlife"]`) {
			t.Fatalf("CRI sees uid %v, info %s", st.Image.GetUid(), st.Info["info"])
		}
		t.Logf("CRI: %s, uid %d, %d bytes", st.Image.Id, st.Image.GetUid().GetValue(), st.Image.GetSize())
		// It runs: the entrypoint, as 65532, with the version linked in.
		if got := ctr("run", "--rm", testRef, "podlife-image-test", "/podlife", "version"); !strings.Contains(got, "image-test") {
			t.Fatalf("podlife version in the image: %q", got)
		}
	})
}

// checkImage checks one platform's image: its config, and its files.
func checkImage(t *testing.T, p *v1.Platform, img v1.Image) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if cf.OS != p.OS || cf.Architecture != p.Architecture || c.User != "65532:65532" ||
		!slices.Equal(c.Entrypoint, []string{"/podlife"}) || !slices.Equal(c.Cmd, []string{"agent"}) || !cf.Created.Equal(time.Unix(0, 0)) {
		t.Fatalf("%s config: os %s arch %s user %q entrypoint %q cmd %q created %s", p, cf.OS, cf.Architecture, c.User, c.Entrypoint, c.Cmd, cf.Created)
	}
	files := map[string]*tar.Header{}
	var passwd, binary []byte
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = h
			switch h.Name {
			case "etc/passwd":
				passwd, _ = io.ReadAll(tr)
			case "podlife":
				binary, _ = io.ReadAll(tr)
			}
		}
		rc.Close()
	}
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"etc/", "etc/group", "etc/passwd", "home/", "home/nonroot/", "podlife", "tmp/"}; !slices.Equal(names, want) {
		t.Fatalf("%s files %v, want %v (no CA bundle, nothing else)", p, names, want)
	}
	if h := files["podlife"]; h.Mode != 0o755 || h.Uid != 0 {
		t.Errorf("%s /podlife mode %o uid %d", p, h.Mode, h.Uid)
	}
	if h := files["home/nonroot/"]; h.Uid != 65532 || h.Mode != 0o700 {
		t.Errorf("%s /home/nonroot uid %d mode %o", p, h.Uid, h.Mode)
	}
	if !strings.Contains(string(passwd), "\nnonroot:x:65532:65532:") {
		t.Errorf("%s /etc/passwd has no nonroot 65532:\n%s", p, passwd)
	}
	f, err := elf.NewFile(bytes.NewReader(binary))
	if err != nil {
		t.Fatalf("%s /podlife is not ELF: %v", p, err)
	}
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[p.Architecture]
	if f.Machine != machine {
		t.Errorf("%s /podlife is for %s", p, f.Machine)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("%s /podlife is dynamically linked (%s): not CGO_ENABLED=0", p, prog.Type)
		}
	}
}

func untar(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
