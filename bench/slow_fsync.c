/* LD_PRELOAD shim for bench_slow_fsync: every fsync and fdatasync waits SLOW_FSYNC_US
 * microseconds (default 5000) before it runs, as on a Raspberry Pi's SD card. The benchmark
 * builds it with the system cc and preloads it into the gateway process only. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

static void wait_like_a_slow_card(void) {
    const char *text = getenv("SLOW_FSYNC_US");
    long us = text ? atol(text) : 5000;
    struct timespec pause = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    wait_like_a_slow_card();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    wait_like_a_slow_card();
    return real(fd);
}
