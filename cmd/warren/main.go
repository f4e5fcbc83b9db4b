// Command warren runs an operator's RabbitMQ consumers and watches them and
// the broker together: queue depth, throughput, latency, alerts and live
// tuning from one dashboard. This file is the only place where concrete types
// are wired together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `warren runs RabbitMQ consumers and watches them and the broker together.

Usage:
  warren serve   [--config FILE]   run the server: consumers, monitor, alerts, dashboard
  warren loadgen --queue Q ...     publish load to a queue
  warren hash-password < password  print a bcrypt hash for auth.users[].password_hash
  warren version                   print the version

Run "warren COMMAND --help" for the flags of a command.
`

// run is main without the process: it returns the exit code so tests can
// call it with their own arguments, environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[1] {
	case "serve":
		err = runServe(ctx, args[2:], getenv, stdout, stderr)
	case "loadgen":
		err = runLoadgen(ctx, args[2:], getenv, stdout, stderr)
	case "hash-password":
		err = runHashPassword(ctx, args[2:], os.Stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "warren", version)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "warren: unknown command %q\n\n%s", args[1], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintln(stderr, "warren:", err)
		return 1
	}
}

// errUsage marks an error whose message the flag package already printed.
var errUsage = errors.New("usage")

// newFlagSet returns a FlagSet that prints to stderr and whose usage line
// names the command.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: warren %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, turning flag errors into errUsage (the flag package
// has printed the message and the usage already).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}
