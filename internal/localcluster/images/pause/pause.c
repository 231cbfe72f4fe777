/*
 * The sandbox ("pause") container of the local cluster: it holds the pod's
 * namespaces open and does nothing else.
 *
 * As PID 1 of its PID namespace it gets no default signal actions, so SIGTERM
 * and SIGINT need handlers to end it; it also reaps orphans re-parented to it
 * when the pod shares one PID namespace.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
	(void)sig;
	_exit(0);
}

static void on_child(int sig) {
	(void)sig;
	while (waitpid(-1, 0, WNOHANG) > 0) {
	}
}

int main(void) {
	struct sigaction stop = {0};
	stop.sa_handler = on_stop;
	if (sigaction(SIGTERM, &stop, 0) != 0 || sigaction(SIGINT, &stop, 0) != 0) {
		return 1;
	}
	struct sigaction child = {0};
	child.sa_handler = on_child;
	child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	if (sigaction(SIGCHLD, &child, 0) != 0) {
		return 1;
	}
	for (;;) {
		pause();
	}
}
