/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-main.c - replay driver: run corpus files through a fuzz target
 * without libFuzzer.
 *
 * Usage: fuzz-NAME [FILE|DIR...]
 * Without arguments it replays $top_srcdir/tests/fuzz/corpus/NAME, NAME
 * being the program's own name (a libtool "lt-" prefix is dropped), and
 * fails if that directory holds no file: a corpus that went missing must
 * not pass silently. Directories are read in name order, not recursively.
 * Exit status: 0 when every input ran (a violated invariant aborts).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

/**
 * replay_file() - read @path and run it through the target
 * @path: a regular file
 * Return: 0, or -errno if it cannot be read
 */
static int replay_file(const char *path)
{
        struct stat st;
        uint8_t *buf;
        size_t len = 0;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return -EINVAL;
        }
        buf = malloc((size_t) st.st_size + 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        while (len < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + len, (size_t) st.st_size - len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t) n;
        }
        close(fd);
        /* An exact-size copy, so ASan sees a read past the end of the input. */
        {
                uint8_t *exact = malloc(len ? len : 1);

                if (!exact) {
                        free(buf);
                        return -ENOMEM;
                }
                memcpy(exact, buf, len);
                free(buf);
                LLVMFuzzerTestOneInput(exact, len);
                free(exact);
        }
        return 0;
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
        return strcmp((*a)->d_name, (*b)->d_name);
}

static int name_visible(const struct dirent *d)
{
        return d->d_name[0] != '.';
}

/**
 * replay_path() - replay a file, or every file of a directory
 * @path: file or directory
 * @count: incremented for each input run
 * Return: 0, or -errno
 */
static int replay_path(const char *path, unsigned *count)
{
        struct dirent **names;
        struct stat st;
        int n, r = 0;

        if (stat(path, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode)) {
                r = replay_file(path);
                if (r == 0)
                        (*count)++;
                return r;
        }
        n = scandir(path, &names, name_visible, name_cmp);
        if (n < 0)
                return -errno;
        for (int i = 0; i < n; i++) {
                char file[4096];

                snprintf(file, sizeof(file), "%s/%s", path, names[i]->d_name);
                if (r == 0 && stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
                        r = replay_file(file);
                        if (r == 0)
                                (*count)++;
                        else
                                fprintf(stderr, "cannot replay %s: %s\n", file, strerror(-r));
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char **argv)
{
        const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        unsigned count = 0;
        int r = 0;

        if (strncmp(name, "lt-", 3) == 0)
                name += 3;
        if (argc > 1) {
                for (int i = 1; i < argc && r == 0; i++) {
                        r = replay_path(argv[i], &count);
                        if (r < 0)
                                fprintf(stderr, "%s: %s: %s\n", name, argv[i], strerror(-r));
                }
        } else {
                const char *top = getenv("top_srcdir");
                char dir[4096];

                snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", top ? top : ".", name);
                r = replay_path(dir, &count);
                if (r < 0)
                        fprintf(stderr, "%s: %s: %s\n", name, dir, strerror(-r));
                else if (count == 0) {
                        fprintf(stderr, "%s: no corpus file in %s\n", name, dir);
                        r = -ENOENT;
                }
        }
        if (r < 0)
                return EXIT_FAILURE;
        printf("%s: %u input(s) replayed, every invariant held\n", name, count);
        return EXIT_SUCCESS;
}
