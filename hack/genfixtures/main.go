// Command genfixtures writes the recorded node of internal/fixtures into
// lifecycle/testdata: the kubelet's /pods answer as the kubelet serializes it
// (encoding/json of a v1.PodList) and the CRI answers as protobuf JSON.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/podlife/podlife/internal/fixtures"
)

func main() {
	if err := run(filepath.Join("lifecycle", "testdata")); err != nil {
		fmt.Fprintln(os.Stderr, "genfixtures:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	n := fixtures.Build()
	pods, err := json.Marshal(n.Pods)
	if err != nil {
		return fmt.Errorf("marshal pods: %w", err)
	}
	files := map[string][]byte{"kubelet-pods.json": pods}
	for name, m := range map[string]proto.Message{"cri-sandboxes.json": n.Sandboxes, "cri-containers.json": n.Containers} {
		b, err := protojson.MarshalOptions{Multiline: true}.Marshal(m)
		if err != nil {
			return fmt.Errorf("marshal %s: %w", name, err)
		}
		files[name] = b
	}
	var sts []json.RawMessage
	for _, s := range n.Statuses {
		b, err := protojson.Marshal(s)
		if err != nil {
			return fmt.Errorf("marshal status: %w", err)
		}
		sts = append(sts, b)
	}
	if files["cri-container-statuses.json"], err = json.MarshalIndent(sts, "", " "); err != nil {
		return err
	}
	if files["expected-stages.json"], err = json.MarshalIndent(n.Expected, "", "  "); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}
