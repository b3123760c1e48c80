/*
 * trace-text: which functions of a program does a run execute, in the
 * order first executed?
 *
 *   trace-text ENTRIES OUT -- COMMAND [ARGS...]
 *
 * ENTRIES lists function entry addresses (hex, one per line, of a
 * non-PIE executable: COMMAND itself). Each gets a one-shot breakpoint;
 * COMMAND and every process and thread it forks or clones run traced, and
 * the first time any of them reaches an entry, the address is written to
 * OUT (16 hex digits, as nm prints it) and the breakpoint is removed from that address space. A process
 * that execs another program is let go.
 *
 * scripts/build-static-runtime.sh uses it to lay out the functions a
 * container's life runs side by side (a linker symbol-ordering file), so
 * that a run maps fewer text pages. A build tool, not part of the product.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

struct entry {
	uint64_t addr;
	long word; /* the original word at addr */
	int noted;
};

static struct entry *entries;
static size_t n_entries;

static int by_addr(const void *a, const void *b)
{
	uint64_t x = ((const struct entry *)a)->addr, y = ((const struct entry *)b)->addr;
	return x < y ? -1 : x > y;
}

static struct entry *find(uint64_t addr)
{
	struct entry key = {.addr = addr};
	return bsearch(&key, entries, n_entries, sizeof key, by_addr);
}

/* Write an int3 at every entry of pid's (fresh, untouched) image. */
static int arm(pid_t pid)
{
	for (size_t i = 0; i < n_entries; i++) {
		errno = 0;
		long w = ptrace(PTRACE_PEEKTEXT, pid, (void *)entries[i].addr, 0);
		if (errno) {
			fprintf(stderr, "trace-text: peek %llx: %s\n",
				(unsigned long long)entries[i].addr, strerror(errno));
			return -1;
		}
		entries[i].word = w;
		long trap = (w & ~0xffL) | 0xcc;
		if (ptrace(PTRACE_POKETEXT, pid, (void *)entries[i].addr, (void *)trap) < 0) {
			perror("trace-text: poke");
			return -1;
		}
	}
	return 0;
}


/* The tasks being traced. */
static pid_t live[4096];
static size_t n_live;

static void remember(pid_t pid)
{
	for (size_t i = 0; i < n_live; i++)
		if (live[i] == pid)
			return;
	if (n_live < sizeof live / sizeof live[0])
		live[n_live++] = pid;
}

static void forget(pid_t pid)
{
	for (size_t i = 0; i < n_live; i++)
		if (live[i] == pid) {
			live[i] = live[--n_live];
			return;
		}
}

static void restore(pid_t pid, const struct entry *e)
{
	errno = 0;
	long cur = ptrace(PTRACE_PEEKTEXT, pid, (void *)e->addr, 0);
	if (errno == 0 && (cur & 0xff) == 0xcc) {
		long w = (cur & ~0xffL) | (e->word & 0xff);
		ptrace(PTRACE_POKETEXT, pid, (void *)e->addr, (void *)w);
	}
}

/* A task that outlives COMMAND: every trap out of its image, then go. */
static void disarm_and_detach(pid_t pid)
{
	for (size_t i = 0; i < n_entries; i++)
		restore(pid, &entries[i]);
	ptrace(PTRACE_DETACH, pid, 0, 0);
	forget(pid);
}

/* COMMAND ended: stop the tasks still running to disarm them. */
static void release_all(void)
{
	for (size_t i = 0; i < n_live; i++)
		ptrace(PTRACE_INTERRUPT, live[i], 0, 0);
}

int main(int argc, char **argv)
{
	if (argc < 5 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr, "usage: trace-text ENTRIES OUT -- COMMAND [ARGS...]\n");
		return 2;
	}
	FILE *in = fopen(argv[1], "r");
	FILE *out = fopen(argv[2], "w");
	if (!in || !out) {
		perror("trace-text");
		return 2;
	}
	size_t cap = 0;
	unsigned long long a;
	while (fscanf(in, "%llx", &a) == 1) {
		if (n_entries == cap) {
			cap = cap ? cap * 2 : 4096;
			entries = realloc(entries, cap * sizeof *entries);
			if (!entries) {
				perror("trace-text");
				return 2;
			}
		}
		entries[n_entries++] = (struct entry){.addr = a};
	}
	fclose(in);
	qsort(entries, n_entries, sizeof *entries, by_addr);
	/* Aliases share an entry: keep one. */
	size_t k = 0;
	for (size_t i = 0; i < n_entries; i++)
		if (k == 0 || entries[k - 1].addr != entries[i].addr)
			entries[k++] = entries[i];
	n_entries = k;

	pid_t child = fork();
	if (child < 0) {
		perror("fork");
		return 2;
	}
	if (child == 0) {
		raise(SIGSTOP);
		execvp(argv[4], argv + 4);
		perror("exec");
		_exit(127);
	}
	int status;
	if (waitpid(child, &status, WUNTRACED) < 0 || !WIFSTOPPED(status)) {
		fprintf(stderr, "trace-text: %s did not start\n", argv[4]);
		return 2;
	}
	/* Seized (not TRACEME), so that tasks still alive when COMMAND ends
	 * (a created container's init) can be interrupted, cleaned of their
	 * traps and let go. */
	if (ptrace(PTRACE_SEIZE, child, 0,
		   PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
			   PTRACE_O_TRACEEXEC) < 0) {
		perror("trace-text: seize");
		return 2;
	}
	kill(child, SIGCONT);
	int armed = 0, exit_code = 0, main_done = 0;
	for (;;) {
		if (main_done && n_live == 0)
			break;
		pid_t pid = waitpid(-1, &status, __WALL);
		if (pid < 0) {
			if (errno == ECHILD)
				break;
			if (errno == EINTR)
				continue;
			perror("waitpid");
			return 2;
		}
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			forget(pid);
			if (pid == child) {
				exit_code = WIFEXITED(status) ? WEXITSTATUS(status)
							      : 128 + WTERMSIG(status);
				main_done = 1;
				release_all();
			}
			continue;
		}
		if (!WIFSTOPPED(status))
			continue;
		remember(pid);
		int sig = WSTOPSIG(status);
		int event = status >> 16;
		int deliver = 0;
		if (event == PTRACE_EVENT_EXEC) {
			if (pid == child && !armed) {
				/* COMMAND's image is mapped, not yet run. */
				if (arm(pid) < 0)
					return 2;
				armed = 1;
			} else {
				/* Another program now: let it run on its own. */
				ptrace(PTRACE_DETACH, pid, 0, 0);
				forget(pid);
				continue;
			}
		} else if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK ||
			   event == PTRACE_EVENT_CLONE) {
			unsigned long new_pid;
			if (ptrace(PTRACE_GETEVENTMSG, pid, 0, &new_pid) == 0)
				remember((pid_t)new_pid);
		} else if (event == PTRACE_EVENT_STOP) {
			if (main_done) {
				disarm_and_detach(pid);
				continue;
			}
		} else if (sig == SIGTRAP) {
			struct user_regs_struct regs;
			struct entry *e = NULL;
			if (ptrace(PTRACE_GETREGS, pid, 0, &regs) == 0)
				e = find(regs.rip - 1);
			if (e) {
				if (!e->noted) {
					e->noted = 1;
					fprintf(out, "%016llx\n", (unsigned long long)e->addr);
				}
				/* Put the first byte back in this address space (the
				 * rest of the word may hold a neighbour's trap). */
				restore(pid, e);
				regs.rip -= 1;
				ptrace(PTRACE_SETREGS, pid, 0, &regs);
			} else {
				deliver = sig;
			}
		} else {
			deliver = sig;
		}
		if (main_done) {
			disarm_and_detach(pid);
			continue;
		}
		ptrace(PTRACE_CONT, pid, 0, (void *)(long)deliver);
	}
	fclose(out);
	return exit_code;
}
