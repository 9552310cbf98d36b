// Command ferry moves datasets between object storage and a directory, and
// mounts a bucket prefix as a lazy filesystem.
//
//	ferry load  [URL DIR]       materialise a prefix into a directory
//	ferry store [DIR URL]       upload a directory to a prefix
//	ferry mount URL MOUNTPOINT  FUSE mount of a prefix
//
// This file holds the dispatch, help and exit codes; each job has its own
// file. Flags override env. Progress and errors go to stdout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
)

// version is set at build time (-ldflags -X main.version=...).
var version = ""

// Exit codes, documented in the README.
const (
	exitOK          = 0
	exitFailure     = 1 // the job failed (store unreachable, transfer or verification error)
	exitUsage       = 2 // bad flags, arguments or configuration
	exitInvalidKeys = 3 // load: some keys could not be mapped safely; the rest was loaded
	exitChanges     = 4 // --dry-run: there are changes to make
	exitInterrupted = 130
)

// exitError carries a specific exit code with its error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is an error in the command line or configuration (exit 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// envDoc documents one environment variable a command reads.
type envDoc struct{ name, doc string }

// command is one subcommand. flags is filled by setup, so that help can
// list them without running anything.
type command struct {
	name    string
	args    string // usage of positional arguments
	short   string // one line for the command list; summary's first line when empty
	summary string
	env     []envDoc
	setup   func(fs *flag.FlagSet) func(ctx context.Context, args []string, out io.Writer) error
}

func commands() map[string]*command {
	cmds := map[string]*command{}
	for _, c := range []*command{loadCommand(), storeCommand(), mountCommand(), versionCommand()} {
		cmds[c.name] = c
	}
	return cmds
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}

// run executes one ferry invocation and returns its exit code.
func run(args []string, out io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			if c, ok := cmds[args[1]]; ok {
				c.usage(out)
				return exitOK
			}
		}
		mainUsage(out, cmds)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(out, "ferry: unknown command %q (see ferry --help)\n", args[0])
		return exitUsage
	}
	fs := flag.NewFlagSet("ferry "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	do := c.setup(fs)
	operands, err := parseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(out)
			return exitOK
		}
		fmt.Fprintf(out, "ferry %s: %v (see ferry %s --help)\n", c.name, err, c.name)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = do(ctx, operands, out)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(out, "ferry %s: %s\n", c.name, oneLine(err))
	return exitCode(ctx, err)
}

// parseInterspersed parses args with fs, flags before, between and after
// the operands (ferry load URL DIR --quiet), as rclone and s5cmd take
// them, and returns the operands in order. "--" ends the flags: all that
// follows is an operand.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return operands, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(operands, rest...), nil
		}
		operands, args = append(operands, rest[0]), rest[1:]
	}
}

func exitCode(ctx context.Context, err error) int {
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	return exitFailure
}

// oneLine keeps an error message on one line, as the contract promises.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func mainUsage(out io.Writer, cmds map[string]*command) {
	fmt.Fprintln(out, `ferry moves datasets between object storage and a directory, and mounts a
bucket prefix as a lazy filesystem.

Usage: ferry <command> [flags] [arguments]

Commands:`)
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		short := cmds[n].short
		if short == "" {
			short, _, _ = strings.Cut(cmds[n].summary, "\n")
		}
		fmt.Fprintf(out, "  %-8s %s\n", n, short)
	}
	fmt.Fprintln(out, `
Store URLs: s3://bucket/prefix  gs://bucket/prefix  az://container/prefix  file:///abs/dir
Run 'ferry <command> --help' for a command's flags and environment variables.`)
}

func (c *command) usage(out io.Writer) {
	fmt.Fprintf(out, "Usage: ferry %s [flags] %s\n\n%s\n", c.name, c.args, c.summary)
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.setup(fs)
	var flags strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		name, help := flag.UnquoteUsage(f)
		if _, ok := f.Value.(*sizeFlag); ok && name == "value" {
			name = "size"
		}
		fmt.Fprintf(&flags, "  --%s %s\n      %s", f.Name, name, help)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(&flags, " (default %s)", f.DefValue)
		}
		flags.WriteString("\n")
	})
	if flags.Len() > 0 {
		fmt.Fprintf(out, "\nFlags:\n%s", flags.String())
	}
	if len(c.env) > 0 {
		fmt.Fprintln(out, "\nEnvironment (flags override):")
		for _, e := range c.env {
			fmt.Fprintf(out, "  %-30s %s\n", e.name, e.doc)
		}
	}
}

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print ferry's version",
		setup: func(*flag.FlagSet) func(context.Context, []string, io.Writer) error {
			return func(_ context.Context, args []string, out io.Writer) error {
				if len(args) > 0 {
					return usageErrorf("version takes no arguments")
				}
				fmt.Fprintln(out, "ferry", buildVersion())
				return nil
			}
		},
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}
