/*
 * hotloop: a native (non-Go) program that spends nearly all its CPU in one known function,
 * hot_spin(), for goroscope's profiler tests: symbolized from its ELF symbols (and DWARF when
 * built with -g), unwound by frame pointers.
 *
 * Build: cc -O1 -g -fno-omit-frame-pointer -fno-inline -o hotloop hotloop.c
 *
 * It prints the ready line {"ready":true} once spinning, and ends itself after a minute so a
 * test that dies cannot leave it burning a CPU.
 */
#include <stdio.h>
#include <unistd.h>

/* Written by the loop so the compiler cannot drop it. */
volatile unsigned long sink;

/* Rounds of hot_spin done. */
unsigned long rounds;

/* Called once per round, so hot_spin is no leaf: GCC sets up no frame in a leaf function even
 * with -fno-omit-frame-pointer, and a frame-pointer walk from inside it skips its caller. */
void count_round(void)
{
	rounds++;
}

/* Nearly all the program's time: a loop with no calls, then one call. */
void hot_spin(void)
{
	for (unsigned long i = 0; i < 50000000UL; i++)
		sink += i;
	count_round();
}

int main(void)
{
	alarm(60);
	printf("{\"ready\":true}\n");
	fflush(stdout);
	for (;;)
		hot_spin();
}
