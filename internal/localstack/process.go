package localstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a child gets to exit after SIGTERM before SIGKILL.
const stopGrace = 10 * time.Second

// Process is a child process whose output goes to a log file and,
// line by line, to an optional observer.
type Process struct {
	// Name is a short label for messages ("hub", "manager", ...).
	Name string
	// LogPath is the file holding the process's stdout and stderr.
	LogPath string

	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	stopMu sync.Mutex
}

// startProcess starts bin with args and env (added to the current
// environment). Each output line is written to logPath and passed to onLine
// when it is not nil.
func startProcess(name, logPath string, onLine func(string), env []string, bin string, args ...string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = childAttributes()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		scanner := bufio.NewScanner(pr)
		scanner.Buffer(make([]byte, 64*1024), 1024*1024)
		for scanner.Scan() {
			line := scanner.Text()
			fmt.Fprintln(logFile, line)
			if onLine != nil {
				onLine(line)
			}
		}
		io.Copy(io.Discard, pr) // a line too long for the scanner must not block the child
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		<-copied
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Exited reports whether the process has exited, and its error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, waits up to stopGrace, then
// sends SIGKILL. It returns the exit error unless the process exited because
// of the signal or with status 0.
func (p *Process) Stop() error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	if exited, _ := p.Exited(); exited {
		return nil
	}
	signalGroup(p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	var exitErr *exec.ExitError
	if errors.As(p.err, &exitErr) && !exitErr.Exited() {
		return nil // ended by our signal
	}
	return p.err
}

// Wait waits for the process to exit or ctx to end.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// LogTail returns the last n lines of the process's log.
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
