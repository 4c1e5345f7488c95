package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/seshgo/sesh/storeurl"
)

func main() {
	// go-redis logs each failed dial to os.Stderr; the error seshctl
	// prints says the same, once.
	redis.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "seshctl:", err)
		var ue *usageError
		if errors.As(err, &ue) && ue.hint != "" {
			fmt.Fprintln(os.Stderr, ue.hint)
		}
	}
	os.Exit(exitCode(err))
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// usageError is an error in the command line: exit status 2.
type usageError struct {
	msg  string
	hint string // a usage line, printed after the error by main
}

func (e *usageError) Error() string { return e.msg }

func usagef(hint, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), hint: hint}
}

// exitCode is the exit status for run's error.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

const usageText = `seshctl administers the sessions of a sesh store.

Usage:
  seshctl [--store URL] COMMAND [flags]

Commands:
  list    [--user U] [--limit N] [--json]   list live sessions, all or one user's
  show    HANDLE [--json]                   show one session
  revoke  --handle H | --user U | --all --yes
                                            end one session, a user's sessions and
                                            tokens, or every session and token
  sweep   [--batch N]                       delete expired records and tombstones
  stats   [--json]                          count sessions, users, tokens and keys
  keygen  [--id N]                          print a new key for SESH_KEYS
  reseal  [--batch N]                       re-seal records under the current key
  help    [COMMAND]                         show this help, or a command's

Environment:
  SESH_STORE  the store URL, unless --store is given: memory:, file:PATH,
              sqlite:PATH, redis://HOST:PORT/DB, redis+cluster://HOSTS,
              redis+sentinel://HOSTS/MASTER, postgres://..., mysql://...,
              memcached://HOSTS (see package storeurl)
  SESH_KEYS   the application's key ring, current key first (all commands
              but keygen)
  SESH_*      the application's other settings (see sesh.ConfigFromEnv)

Exit status: 0 on success, 1 on failure, 2 on a usage error.
`

// command is a subcommand.
type command struct {
	name  string
	args  string // synopsis of flags and arguments
	about string
	// npos is the number of positional arguments (0 or 1).
	npos  int
	flags func(fs *flag.FlagSet) func(c *cli, pos []string) error
}

func (c *command) synopsis() string { return "usage: seshctl " + c.name + " " + c.args }

var commands = []*command{
	{name: "list", args: "[--user U] [--limit N] [--json]", about: "List live sessions: all of them (the store must be listable), or one user's (the store must index users).", flags: listFlags},
	{name: "show", args: "HANDLE [--json]", about: "Show the session named by HANDLE, as 'seshctl list' prints it. A handle that starts with '-' goes after --, as in: seshctl show -- -q3n0hWcA2ZyQkTl.", npos: 1, flags: showFlags},
	{name: "revoke", args: "--handle H | --user U | --all --yes", about: "End one session; or every session and remember-me token of a user; or every session and token in the store.", flags: revokeFlags},
	{name: "sweep", args: "[--batch N]", about: "Delete expired records and lapsed tombstones, batch by batch, from stores that need it (not Redis or memcached, which expire records themselves).", flags: sweepFlags},
	{name: "stats", args: "[--json]", about: "Count the live sessions (authenticated, anonymous, remembered, unreadable), distinct users, remember-me tokens and records by key ID.", flags: statsFlags},
	{name: "keygen", args: "[--id N]", about: "Print a new random key in SESH_KEYS form. Its ID is --id, or one more than the largest in SESH_KEYS, or 1.", flags: keygenFlags},
	{name: "reseal", args: "[--batch N]", about: "Re-seal, under the current key (the first of SESH_KEYS), every record sealed under an older one.", flags: resealFlags},
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// cli is one run of seshctl.
type cli struct {
	ctx            context.Context
	stdout, stderr io.Writer
	getenv         func(string) string
	storeURL       string // --store, "" if not given
	cmd            *command
	ms             *managed // opened by open
}

// run runs seshctl with args (without the program name), reading the
// environment through getenv.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := &cli{ctx: ctx, stdout: stdout, stderr: stderr, getenv: getenv}
	const hint = "run 'seshctl help' for usage"
	top := flag.NewFlagSet("seshctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	top.StringVar(&c.storeURL, "store", "", "")
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, err := io.WriteString(stdout, usageText)
			return err
		}
		return usagef(hint, "%v", err)
	}
	args = top.Args()
	if len(args) == 0 {
		return usagef(hint, "no command given (want one of %s)", commandNames())
	}
	name, args := args[0], args[1:]
	if name == "help" {
		return c.help(args)
	}
	cmd := lookup(name)
	if cmd == nil {
		return usagef(hint, "unknown command %q (want one of %s)", redactArg(name), commandNames())
	}
	c.cmd = cmd
	fs := flag.NewFlagSet("seshctl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.storeURL, "store", c.storeURL, "the store `URL` (default $SESH_STORE)")
	exec := cmd.flags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c.commandHelp(cmd, fs)
		}
		return usagef(cmd.synopsis(), "%s: %v", name, err)
	}
	switch {
	case len(pos) < cmd.npos:
		return usagef(cmd.synopsis(), "%s: missing argument", name)
	case len(pos) > cmd.npos:
		return usagef(cmd.synopsis(), "%s: unexpected argument %q", name, redactArg(pos[cmd.npos]))
	}
	defer func() {
		if c.ms != nil {
			c.ms.close()
		}
	}()
	return exec(c, pos)
}

func commandNames() string {
	names := make([]string, 0, len(commands)+1)
	for _, c := range commands {
		names = append(names, c.name)
	}
	return strings.Join(append(names, "help"), ", ")
}

// help prints the usage, or a command's.
func (c *cli) help(args []string) error {
	if len(args) == 0 {
		_, err := io.WriteString(c.stdout, usageText)
		return err
	}
	cmd := lookup(args[0])
	if cmd == nil || len(args) > 1 {
		return usagef("run 'seshctl help' for usage", "help: unknown command %q (want one of %s)", redactArg(strings.Join(args, " ")), commandNames())
	}
	fs := flag.NewFlagSet("seshctl "+cmd.name, flag.ContinueOnError)
	fs.StringVar(new(string), "store", "", "the store `URL` (default $SESH_STORE)")
	cmd.flags(fs)
	return c.commandHelp(cmd, fs)
}

func (c *cli) commandHelp(cmd *command, fs *flag.FlagSet) error {
	fmt.Fprintf(c.stdout, "%s\n\n%s\n\nFlags:\n", cmd.synopsis(), cmd.about)
	fs.SetOutput(c.stdout)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return nil
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments, which it returns. Everything after "--" is
// positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// redactArg returns a command-line argument for an error message, with
// any password replaced, in case it is a store URL given in the wrong
// place.
func redactArg(s string) string {
	if strings.Contains(s, "@") || strings.Contains(s, "?") {
		return storeurl.Redact(s)
	}
	return s
}
