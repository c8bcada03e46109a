/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
/* examples/ is not product code: this use of ppserver/ does not count. */
int server_tick(int n);
int main(void)
{
    return server_tick(0);
}
