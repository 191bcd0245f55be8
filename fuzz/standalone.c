/*
 * fuzz/standalone.c: a driver for a libFuzzer target (LLVMFuzzerTestOneInput)
 * where there is no libFuzzer (gcc, cross compilers, qemu-user): replays the
 * seed files, then mutates them at random (bit flips, byte sets, truncation,
 * attribute lengths, attributes spliced from other seeds) for a bounded time
 * or number of runs. No coverage feedback: a blind but cheap search.
 *   standalone [-t SECONDS] [-n RUNS] [-s SEED] [-o CRASH_PREFIX] SEED_DIR...
 * Seeds are whole netlink messages in this host's byte order. An input that
 * makes the target abort or crash is written to CRASH_PREFIX<pid> first.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX 8192
#define MAX_SEEDS 1024
#define HEAD 20                       /* nlmsghdr + nfgenmsg */

struct seed { uint8_t *data; size_t size; };
static struct seed seeds[MAX_SEEDS];
static size_t nseeds;

/* the input under test, for the crash handler */
static uint8_t input[INPUT_MAX];
static size_t input_size;
static char crash_path[4096];

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next(void)            /* xorshift64* */
{
	rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
	return rng * 2685821657736338717u;
}
static size_t below(size_t n) { return n ? (size_t)(next() % n) : 0; }

static void on_crash(int sig)
{
	int fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd >= 0) {
		ssize_t w = write(fd, input, input_size);
		(void)w;
		close(fd);
	}
	if (write(2, "standalone: crash, input saved\n", 31) < 0)
		fd = -1;
	signal(sig, SIG_DFL);
	raise(sig);
}

static void load(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);

	if (d == NULL) {
		perror(dir);
		exit(2);
	}
	while ((e = readdir(d)) != NULL && nseeds < MAX_SEEDS) {
		char path[4096];
		uint8_t buf[INPUT_MAX];
		FILE *f;
		size_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if ((f = fopen(path, "rb")) == NULL)
			continue;
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		seeds[nseeds].data = malloc(n ? n : 1);
		memcpy(seeds[nseeds].data, buf, n);
		seeds[nseeds++].size = n;
	}
	closedir(d);
}

/* Host-order attribute headers: the offsets of the attributes of one level
 * of buf[at, end), nested ones (NLA_F_NESTED) too, up to max. */
static size_t attrs(const uint8_t *buf, size_t at, size_t end, size_t *out, size_t n, size_t max)
{
	while (at + 4 <= end && n < max) {
		uint16_t len, type;

		memcpy(&len, buf + at, 2);
		memcpy(&type, buf + at + 2, 2);
		if (len < 4 || at + len > end)
			break;
		out[n++] = at;
		if (type & 0x8000)
			n = attrs(buf, at + 4, at + len, out, n, max);
		at += (len + 3u) & ~3u;
	}
	return n;
}

static uint16_t attr_len(const uint8_t *buf, size_t at)
{
	uint16_t len;

	memcpy(&len, buf + at, 2);
	return len;
}

/* An attribute of another seed inserted at an attribute boundary of the
 * input (or in place of one of its attributes). */
static void splice(int replace)
{
	const struct seed *donor = &seeds[below(nseeds)];
	size_t mine[128], theirs[128], n, m, at, from, len, cut = 0;

	if (donor->size <= HEAD || input_size <= HEAD)
		return;
	n = attrs(input, HEAD, input_size, mine, 0, 128);
	m = attrs(donor->data, HEAD, donor->size, theirs, 0, 128);
	if (m == 0)
		return;
	at = n ? mine[below(n)] : HEAD;
	from = theirs[below(m)];
	len = (attr_len(donor->data, from) + 3u) & ~3u;
	if (from + len > donor->size)
		len = donor->size - from;
	if (replace && n)
		cut = (attr_len(input, at) + 3u) & ~3u;
	if (at + cut > input_size)
		cut = input_size - at;
	if (input_size - cut + len > INPUT_MAX)
		return;
	memmove(input + at + len, input + at + cut, input_size - at - cut);
	memcpy(input + at, donor->data + from, len);
	input_size = input_size - cut + len;
}

static void mutate(void)
{
	size_t where[128], n;
	int rounds = 1 + (int)below(4);
	static const uint8_t interesting[] = { 0, 1, 2, 3, 4, 7, 8, 0x7f, 0x80, 0xfe, 0xff };

	while (rounds--) {
		switch (below(7)) {
		case 0:                       /* a bit flipped */
			if (input_size)
				input[below(input_size)] ^= (uint8_t)(1u << below(8));
			break;
		case 1:                       /* a byte set */
			if (input_size)
				input[below(input_size)] = next() & 1 ? interesting[below(sizeof(interesting))]
				                                       : (uint8_t)next();
			break;
		case 2:                       /* truncated */
			input_size = below(input_size + 1);
			break;
		case 3:                       /* an attribute's length off by a little */
			n = attrs(input, HEAD, input_size, where, 0, 128);
			if (n) {
				size_t at = where[below(n)];
				uint16_t len = (uint16_t)(attr_len(input, at) + (int)below(17) - 8);
				memcpy(input + at, &len, 2);
			}
			break;
		case 4:
		case 5:                       /* an attribute of another seed spliced in */
			splice(next() & 1);
			break;
		case 6:                       /* an attribute removed */
			n = attrs(input, HEAD, input_size, where, 0, 128);
			if (n) {
				size_t at = where[below(n)], len = (attr_len(input, at) + 3u) & ~3u;
				if (at + len > input_size)
					len = input_size - at;
				memmove(input + at, input + at + len, input_size - at - len);
				input_size -= len;
			}
			break;
		}
	}
}

int main(int argc, char **argv)
{
	double seconds = 10;
	unsigned long long runs = 0, max_runs = 0, seed = (unsigned long long)time(NULL);
	const char *prefix = "crash-";
	time_t start = time(NULL);
	size_t i;
	int opt;

	while ((opt = getopt(argc, argv, "t:n:s:o:")) != -1) {
		switch (opt) {
		case 't': seconds = atof(optarg); break;
		case 'n': max_runs = strtoull(optarg, NULL, 10); break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		case 'o': prefix = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-t SECONDS] [-n RUNS] [-s SEED] [-o CRASH_PREFIX] SEED_DIR...\n", argv[0]);
			return 2;
		}
	}
	for (; optind < argc; optind++)
		load(argv[optind]);
	if (nseeds == 0) {
		fprintf(stderr, "standalone: no seeds\n");
		return 2;
	}
	snprintf(crash_path, sizeof(crash_path), "%s%ld", prefix, (long)getpid());
	signal(SIGABRT, on_crash);
	signal(SIGSEGV, on_crash);
	signal(SIGBUS, on_crash);
	signal(SIGFPE, on_crash);
	rng ^= seed * 0x2545f4914f6cdd1du;

	/* the seeds as they are, then mutants until the time or the runs are spent */
	for (i = 0; i < nseeds; i++, runs++) {
		input_size = seeds[i].size;
		memcpy(input, seeds[i].data, input_size);
		LLVMFuzzerTestOneInput(input, input_size);
	}
	while ((max_runs == 0 || runs < max_runs) && difftime(time(NULL), start) < seconds) {
		unsigned int batch;
		for (batch = 0; batch < 256; batch++, runs++) {
			const struct seed *s = &seeds[below(nseeds)];
			input_size = s->size;
			memcpy(input, s->data, input_size);
			mutate();
			LLVMFuzzerTestOneInput(input, input_size);
		}
	}
	printf("standalone: %llu executions in %.0f s from %zu seeds (seed %llu), no crash\n",
	       runs, difftime(time(NULL), start), nseeds, seed);
	return 0;
}
