package agent

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// loadFile loads the configuration from the file at path alone (no flags
// but --config).
func loadFile(t *testing.T, path string) (Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	Flags(fs)
	if err := fs.Parse([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	return LoadConfig(fs)
}

// asFile is c written back as a configuration file: every field under its
// key (its mapstructure tag), durations in Go's notation.
func asFile(c Config) map[string]any {
	out := map[string]any{}
	v := reflect.ValueOf(c)
	for i := 0; i < v.NumField(); i++ {
		val := v.Field(i).Interface()
		if d, ok := val.(time.Duration); ok {
			val = d.String()
		}
		out[v.Type().Field(i).Tag.Get("mapstructure")] = val
	}
	return out
}

// FuzzConfigFile loads arbitrary bytes as the --config file:
//   - LoadConfig never panics;
//   - a rejected file gives a ConfigError of one line, "config: KEY: ...";
//   - an accepted file's configuration validates again unchanged, and
//     written back as a file (every key) it loads to the same configuration.
//
// The corpus (testdata/fuzz/FuzzConfigFile) holds testdata/config/*.yaml and
// hand-made edge cases. NODE_NAME is set so that no hostname is looked up,
// and PODLIFE_* variables are cleared so that only the file speaks.
func FuzzConfigFile(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "config", "*.yaml"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PODLIFE_") {
			f.Setenv(k, "")
		}
	}
	f.Setenv("NODE_NAME", "fuzz-node")
	dir := f.TempDir()
	path, back := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "written-back.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := loadFile(t, path)
		if err != nil {
			msg := err.Error()
			if !IsConfigError(err) || !strings.HasPrefix(msg, "config: ") || strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error %q (%T): want one ConfigError line", msg, err)
			}
			return
		}
		again := c
		if err := again.Validate(); err != nil || again != c {
			t.Fatalf("accepted %+v, which validates again to %+v: %v", c, again, err)
		}
		out, err := yaml.Marshal(asFile(c))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(back, out, 0o600); err != nil {
			t.Fatal(err)
		}
		reloaded, err := loadFile(t, back)
		if err != nil || !reflect.DeepEqual(reloaded, c) {
			t.Fatalf("accepted %+v, written back as\n%s\nloads to %+v: %v", c, out, reloaded, err)
		}
	})
}
