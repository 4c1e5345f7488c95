package redisstore_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file starts a Redis Cluster of a test's own, from the redis-server
// and redis-cli binaries, for tests that must stop and restart its nodes:
// the shared cluster of scripts/testservers.sh is never touched.

// procCluster is a Redis Cluster of redis-server processes owned by one
// test, stopped when the test ends.
type procCluster struct {
	t     *testing.T
	nodes []*redisProc
}

// redisProc is one redis-server process of a procCluster. Its data
// directory, nodes.conf and log outlive the process, so it can be killed
// and restarted as the same cluster node.
type redisProc struct {
	bin   string
	dir   string
	port  int
	bus   int
	extra []string
	cmd   *exec.Cmd
	// exited is closed once the process has exited and been reaped.
	exited chan struct{}
	// admin is a direct connection to this node for cluster commands.
	admin *redis.Client
}

// needRedisBinaries returns the paths of redis-server and redis-cli, or
// skips the test without them (fails it in CI, where scripts/testservers.sh
// installs them).
func needRedisBinaries(t *testing.T) (server, cli string) {
	t.Helper()
	var missing []string
	server, err := exec.LookPath("redis-server")
	if err != nil {
		missing = append(missing, "redis-server")
	}
	cli, err = exec.LookPath("redis-cli")
	if err != nil {
		missing = append(missing, "redis-cli")
	}
	if len(missing) > 0 {
		msg := strings.Join(missing, " and ") + " not found in PATH: run the tests under scripts/testservers.sh"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return server, cli
}

// freeLocalPorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago: the kernel picks them, and they are released just before
// returning.
func freeLocalPorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// startProcCluster starts masters×(1+replicas) cluster nodes with
// cluster-node-timeout 1000 ms (a failover takes a few seconds) plus the
// extra redis-server arguments,
// joins them with redis-cli --cluster create, and waits until every node
// reports cluster_state:ok and every master has its replicas online.
// Every process is killed when t ends.
func startProcCluster(t *testing.T, masters, replicas int, extra ...string) *procCluster {
	t.Helper()
	server, cli := needRedisBinaries(t)
	n := masters * (1 + replicas)
	ports := freeLocalPorts(t, 2*n)
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	pc := &procCluster{t: t}
	t.Cleanup(pc.stop) // before the directories are removed: cleanups run last-in first-out
	for i := range n {
		p := &redisProc{bin: server, dir: dirs[i], port: ports[i], bus: ports[n+i], extra: extra}
		p.admin = redis.NewClient(&redis.Options{Addr: p.addr(), DialTimeout: time.Second,
			ReadTimeout: 2 * time.Second, MaxRetries: -1, DialerRetries: 1})
		pc.nodes = append(pc.nodes, p)
		p.start(t)
	}
	for _, p := range pc.nodes {
		pc.waitUntil(10*time.Second, "redis-server on "+p.addr()+" answers PING", func(ctx context.Context) (bool, string) {
			err := p.admin.Ping(ctx).Err()
			return err == nil, fmt.Sprint(err)
		})
	}
	args := []string{"--cluster", "create"}
	for _, p := range pc.nodes {
		args = append(args, p.addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	pc.waitUntil(30*time.Second, "the cluster is ok with every replica online", func(ctx context.Context) (bool, string) {
		return pc.healthy(ctx, pc.nodes, masters, replicas)
	})
	return pc
}

// addr is the node's client address.
func (p *redisProc) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// start runs redis-server in the foreground, with its files in p.dir.
func (p *redisProc) start(t *testing.T) {
	t.Helper()
	args := []string{
		"--port", strconv.Itoa(p.port), "--cluster-port", strconv.Itoa(p.bus),
		"--bind", "127.0.0.1", "--daemonize", "no", "--dir", p.dir, "--logfile", "redis.log",
		"--save", "", "--appendonly", "no",
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "1000",
		"--repl-diskless-sync-delay", "0", // a replica syncs at once, not after 5 s
	}
	cmd := exec.Command(p.bin, append(args, p.extra...)...)
	cmd.Dir = p.dir
	// What the server says before its log file is open (a bad option).
	out, err := os.OpenFile(filepath.Join(p.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server on %s: %v", p.addr(), err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
}

// kill stops the process with SIGKILL, as a crash would, and waits for it
// to be gone.
func (p *redisProc) kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// stop kills every node and closes the admin clients; on failure it logs
// the end of each node's log.
func (pc *procCluster) stop() {
	for _, p := range pc.nodes {
		p.kill()
		p.admin.Close()
		if pc.t.Failed() {
			pc.t.Logf("last lines of the log of %s:\n%s", p.addr(), p.logTail(15))
		}
	}
}

// logTail returns the last n lines of the node's log.
func (p *redisProc) logTail(n int) string {
	f, err := os.Open(filepath.Join(p.dir, "redis.log"))
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitUntil polls cond every 50 ms until it holds, and fails the test if
// it still does not after timeout, with cond's last explanation. It
// returns how long the wait took.
func (pc *procCluster) waitUntil(timeout time.Duration, what string, cond func(ctx context.Context) (bool, string)) time.Duration {
	pc.t.Helper()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(pc.t.Context(), 2*time.Second)
		ok, why := cond(ctx)
		cancel()
		if ok {
			return time.Since(start)
		}
		select {
		case <-deadline.C:
			pc.t.Fatalf("waited %v for %s: %s", timeout, what, why)
		case <-tick.C:
		}
	}
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr string
	flags    []string
	master   string // the master's ID for a replica, else "-"
	slots    []string
}

func (n clusterNode) has(flag string) bool {
	for _, f := range n.flags {
		if f == flag {
			return true
		}
	}
	return false
}

// view returns the cluster as node p sees it.
func (p *redisProc) view(ctx context.Context) ([]clusterNode, error) {
	out, err := p.admin.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, err
	}
	var nodes []clusterNode
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		nodes = append(nodes, clusterNode{id: f[0], addr: addr, flags: strings.Split(f[2], ","), master: f[3], slots: f[8:]})
	}
	return nodes, nil
}

// myID returns the node's cluster ID.
func (p *redisProc) myID(ctx context.Context) (string, error) {
	return p.admin.Do(ctx, "CLUSTER", "MYID").Text()
}

// fields parses the "key:value" lines of an INFO or CLUSTER INFO reply.
func infoFields(s string) map[string]string {
	m := make(map[string]string)
	for line := range strings.Lines(s) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// healthy reports whether every node in nodes says cluster_state:ok, and
// the first sees masters masters serving slots, each with at least
// replicas replicas online; if not, it says what is missing.
func (pc *procCluster) healthy(ctx context.Context, nodes []*redisProc, masters, replicas int) (bool, string) {
	for _, p := range nodes {
		info, err := p.admin.ClusterInfo(ctx).Result()
		if err != nil {
			return false, fmt.Sprintf("%s: CLUSTER INFO: %v", p.addr(), err)
		}
		if st := infoFields(info)["cluster_state"]; st != "ok" {
			return false, fmt.Sprintf("%s: cluster_state:%s", p.addr(), st)
		}
	}
	view, err := nodes[0].view(ctx)
	if err != nil {
		return false, fmt.Sprintf("%s: CLUSTER NODES: %v", nodes[0].addr(), err)
	}
	n := 0
	for _, v := range view {
		if !v.has("master") || v.has("fail") || len(v.slots) == 0 {
			continue
		}
		n++
		node := pc.byAddr(v.addr)
		if node == nil {
			return false, fmt.Sprintf("%s reports an unknown master %s", nodes[0].addr(), v.addr)
		}
		info, err := node.admin.Info(ctx, "replication").Result()
		if err != nil {
			return false, fmt.Sprintf("%s: INFO replication: %v", v.addr, err)
		}
		if online := strings.Count(info, "state=online"); online < replicas {
			return false, fmt.Sprintf("master %s has %d replicas online, want %d", v.addr, online, replicas)
		}
	}
	if n != masters {
		return false, fmt.Sprintf("%s sees %d masters serving slots, want %d", nodes[0].addr(), n, masters)
	}
	return true, ""
}

// byAddr returns the node listening on addr, or nil.
func (pc *procCluster) byAddr(addr string) *redisProc {
	for _, p := range pc.nodes {
		if p.addr() == addr {
			return p
		}
	}
	return nil
}

// addrs returns every node's address.
func (pc *procCluster) addrs() []string {
	var a []string
	for _, p := range pc.nodes {
		a = append(a, p.addr())
	}
	return a
}
