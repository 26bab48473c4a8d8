// Command podlife is the node-level pod lifecycle agent and its debugging CLI.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/podlife/podlife/internal/version"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `podlife: what the pods on this node are really doing.

Usage:
  podlife version     print the version
  podlife help        show this help
`

// run dispatches a subcommand and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "version", "--version":
		fmt.Fprintln(stdout, version.String())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "podlife: unknown command %q (see 'podlife help')\n", args[0])
		return 2
	}
}
