// Command image builds podlife's container image without Docker: the static
// binary (CGO_ENABLED=0, -trimpath) for each platform, on an empty base with
// what distroless/static gives a Go binary that needs no CA bundle (in a
// cluster the service account's CA is mounted): /etc/passwd and /etc/group
// with root, nobody and nonroot (65532), /home/nonroot and /tmp. The image
// runs as 65532:65532 with entrypoint /podlife and command agent.
//
// The output is one tarball (make image: bin/podlife-image.tar) that is both
//   - an OCI image layout whose index.json names a multi-platform OCI image
//     index (io.containerd.image.name, org.opencontainers.image.ref.name):
//     `ctr images import`, `docker load` with the containerd image store,
//     skopeo and crane read it; and
//   - a docker-archive (manifest.json) of one platform (-docker-platform,
//     default linux/amd64) over the same blobs: the classic `docker load`.
//
// Layers and configs are reproducible: every file time and the image's
// creation time are the Unix epoch (or $SOURCE_DATE_EPOCH).
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() { os.Exit(run()) }

// run builds the image from the command line; 0 on success, 1 on a
// failure, 2 on bad usage.
func run() int { return runArgs(os.Args[1:], os.Stdout, os.Stderr) }

// options are the command line.
type options struct {
	out, ref, version, pkg, root, dockerPlatform string
	platforms                                    []v1.Platform
	epoch                                        time.Time
}

func runArgs(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var platforms string
	fs.StringVar(&o.out, "out", "bin/podlife-image.tar", "the image tarball to write (OCI layout plus a docker-archive manifest.json)")
	fs.StringVar(&o.ref, "ref", "ghcr.io/podlife/podlife:dev", "the image reference the tarball names")
	fs.StringVar(&o.version, "version", "dev", "the version linked into the binary (internal/version.Version)")
	fs.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated OS/ARCH[/VARIANT] to build")
	fs.StringVar(&o.dockerPlatform, "docker-platform", "linux/amd64", "the platform of the docker-archive manifest.json (classic docker load takes one)")
	fs.StringVar(&o.pkg, "pkg", "./cmd/podlife", "the main package to build")
	fs.StringVar(&o.root, "C", ".", "the module directory to build in")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, p := range strings.Split(platforms, ",") {
		pl, err := v1.ParsePlatform(strings.TrimSpace(p))
		if err != nil || pl.OS == "" || pl.Architecture == "" {
			fmt.Fprintf(stderr, "image: -platforms: %q: want OS/ARCH[/VARIANT]\n", p)
			return 2
		}
		if pl.Architecture == "arm64" && pl.Variant == "" {
			pl.Variant = "v8" // as the OCI spec and distroless write it
		}
		o.platforms = append(o.platforms, *pl)
	}
	if !strings.Contains(o.ref, ":") || strings.HasSuffix(o.ref, ":") {
		fmt.Fprintf(stderr, "image: -ref %q: want REPOSITORY:TAG\n", o.ref)
		return 2
	}
	o.epoch = time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "image: SOURCE_DATE_EPOCH %q: %v\n", s, err)
			return 2
		}
		o.epoch = time.Unix(sec, 0).UTC()
	}
	if err := build(o, stdout); err != nil {
		fmt.Fprintf(stderr, "image: %v\n", err)
		return 1
	}
	return 0
}

// Files of the base layer: distroless/static's users, nothing else.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group  = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
	// User is the image's user: distroless's nonroot.
	User = "65532:65532"
)

// built is one platform's image and what the summary says of it.
type built struct {
	platform           v1.Platform
	img                v1.Image
	compressed, unpack int64
}

func build(o options, stdout io.Writer) error {
	work, err := os.MkdirTemp("", "podlife-image-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(work)
	base, err := layer(o.epoch, baseFiles())
	if err != nil {
		return fmt.Errorf("base layer: %w", err)
	}
	var images []built
	for _, p := range o.platforms {
		bin := filepath.Join(work, "podlife-"+p.OS+"-"+p.Architecture)
		if err := goBuild(o, p, bin); err != nil {
			return err
		}
		img, err := image(o, p, base, bin)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		b := built{platform: p, img: img}
		if b.compressed, b.unpack, err = sizes(img); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		images = append(images, b)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range images {
		p := b.platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: b.img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	lay := filepath.Join(work, "layout")
	lp, err := layout.Write(lay, empty.Index)
	if err != nil {
		return fmt.Errorf("OCI layout: %w", err)
	}
	tag := o.ref[strings.LastIndex(o.ref, ":")+1:]
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name": o.ref, "org.opencontainers.image.ref.name": tag,
	})); err != nil {
		return fmt.Errorf("OCI layout: %w", err)
	}
	docker := -1
	for i, b := range images {
		if b.platform.OS+"/"+b.platform.Architecture == strings.TrimSuffix(o.dockerPlatform, "/v8") {
			docker = i
		}
	}
	if docker < 0 {
		return fmt.Errorf("-docker-platform %s is not among -platforms", o.dockerPlatform)
	}
	if err := dockerManifest(lay, o.ref, images[docker].img); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return fmt.Errorf("output dir: %w", err)
	}
	size, err := tarDir(lay, o.out, o.epoch)
	if err != nil {
		return fmt.Errorf("write %s: %w", o.out, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return fmt.Errorf("index digest: %w", err)
	}
	fmt.Fprintf(stdout, "%s: %s, index %s, %s\n", o.out, o.ref, d, mib(size))
	for i, b := range images {
		md, err := b.img.Digest()
		if err != nil {
			return fmt.Errorf("%s: manifest digest: %w", b.platform, err)
		}
		note := ""
		if i == docker {
			note = " (docker-archive manifest.json)"
		}
		fmt.Fprintf(stdout, "  %s: %s, %s compressed, %s uncompressed%s\n", b.platform, md, mib(b.compressed), mib(b.unpack), note)
	}
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n) }

// goBuild builds the static binary for p.
func goBuild(o options, p v1.Platform, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags",
		"-s -w -X github.com/podlife/podlife/internal/version.Version="+o.version, "-o", out, o.pkg)
	cmd.Dir = o.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Architecture == "arm" && strings.HasPrefix(p.Variant, "v") {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", o.pkg, p, err, b)
	}
	return nil
}

// file is one entry of a layer.
type file struct {
	name     string
	mode     int64
	uid, gid int
	dir      bool
	body     []byte
	path     string // read the body from this file
}

func baseFiles() []file {
	return []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, uid: 65532, gid: 65532, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
	}
}

// layer is a gzip-compressed OCI layer of files, every time set to epoch.
func layer(epoch time.Time, files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: epoch, Format: tar.FormatPAX}
		body := f.body
		if f.path != "" {
			b, err := os.ReadFile(f.path)
			if err != nil {
				return nil, err
			}
			body = b
		}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		if _, err := tw.Write(body); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// image is one platform's image: the base layer, the binary, the config.
func image(o options, p v1.Platform, base v1.Layer, bin string) (v1.Image, error) {
	app, err := layer(o.epoch, []file{{name: "podlife", mode: 0o755, path: bin}})
	if err != nil {
		return nil, fmt.Errorf("binary layer: %w", err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	cfg := &v1.ConfigFile{
		Architecture: p.Architecture, OS: p.OS, Variant: p.Variant,
		Created: v1.Time{Time: o.epoch},
		Config: v1.Config{
			User: User, Entrypoint: []string{"/podlife"}, Cmd: []string{"agent"}, WorkingDir: "/",
			Labels: map[string]string{
				"org.opencontainers.image.title":   "podlife",
				"org.opencontainers.image.source":  "https://github.com/podlife/podlife",
				"org.opencontainers.image.version": o.version,
			},
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, err
	}
	return mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: o.epoch},
			CreatedBy: "hack/image: /etc/passwd, /etc/group (root, nobody, nonroot 65532), /home/nonroot, /tmp", Comment: "distroless/static's users, no CA bundle"}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: o.epoch},
			CreatedBy: "hack/image: /podlife (CGO_ENABLED=0 go build -trimpath " + o.pkg + ")"}})
}

// sizes are an image's compressed size (manifest, config, layers: what a
// registry stores and a pull transfers) and its layers' uncompressed size.
func sizes(img v1.Image) (compressed, uncompressed int64, err error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, 0, err
	}
	compressed = int64(len(raw)) + m.Config.Size
	layers, err := img.Layers()
	if err != nil {
		return 0, 0, err
	}
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return 0, 0, err
		}
		compressed += n
		rc, err := l.Uncompressed()
		if err != nil {
			return 0, 0, err
		}
		u, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return 0, 0, err
		}
		uncompressed += u
	}
	return compressed, uncompressed, nil
}

// dockerManifest writes the docker-archive manifest.json for img, whose
// config and layers are already blobs of the layout.
func dockerManifest(dir, ref string, img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("docker manifest: %w", err)
	}
	entry := struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{Config: "blobs/" + m.Config.Digest.Algorithm + "/" + m.Config.Digest.Hex, RepoTags: []string{ref}}
	for _, l := range m.Layers {
		entry.Layers = append(entry.Layers, "blobs/"+l.Digest.Algorithm+"/"+l.Digest.Hex)
	}
	for _, p := range append([]string{entry.Config}, entry.Layers...) {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return fmt.Errorf("docker manifest: %w", err)
		}
	}
	b, err := json.Marshal([]any{entry})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644)
}

// tarDir writes dir's files into a tarball at out, sorted, every time set to
// epoch, and returns its size.
func tarDir(dir, out string, epoch time.Time) (int64, error) {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	sort.Strings(names)
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	for _, p := range names {
		fi, err := os.Lstat(p)
		if err != nil {
			return 0, err
		}
		rel, _ := filepath.Rel(dir, p)
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: epoch, Mode: 0o644, Format: tar.FormatPAX}
		if fi.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			if err := tw.WriteHeader(h); err != nil {
				return 0, err
			}
			continue
		}
		if !fi.Mode().IsRegular() {
			return 0, fmt.Errorf("%s: not a regular file", p)
		}
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		if err := tw.WriteHeader(h); err != nil {
			return 0, err
		}
		src, err := os.Open(p)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(tw, src)
		src.Close()
		if err != nil {
			return 0, err
		}
	}
	if err := errors.Join(tw.Close(), f.Close()); err != nil {
		return 0, err
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		return 0, err
	}
	return fi.Size(), os.Rename(tmp, out)
}
