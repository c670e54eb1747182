/* modbus_sim_server: a libmodbus TCP server for tests and benchmarks, serving many connections with
 * poll(2) (no FD_SETSIZE limit). Every unit id is answered from one data model.
 *
 * usage: modbus_sim_server PORT [AREA:ADDR=V,V,...]...
 *   PORT 0 picks a free port. AREA is h (holding), i (input registers), c (coils), d (discrete inputs);
 *   values are decimal or 0x hex 16-bit words (0/1 for bits). Tables hold 10,000 items each; holding
 *   register n and input register n start at n (mod 65536) unless set.
 * Prints "ready PORT" on stdout once listening; stops on SIGTERM/SIGINT. */
#include <modbus.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define ITEMS 10000
#define MAXFD 8192
static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int s) { (void)s; stop_flag = 1; }

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT [AREA:ADDR=V,...]...\n", argv[0]); return 1; }
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", atoi(argv[1]));
    modbus_mapping_t *map = modbus_mapping_new(ITEMS, ITEMS, ITEMS, ITEMS);
    if (!ctx || !map) { fprintf(stderr, "init failed\n"); return 2; }
    for (int i = 0; i < ITEMS; i++) { map->tab_registers[i] = (uint16_t)i; map->tab_input_registers[i] = (uint16_t)i; }
    for (int a = 2; a < argc; a++) {
        char area; int addr; char *eq = strchr(argv[a], '=');
        if (!eq || sscanf(argv[a], "%c:%d=", &area, &addr) != 2) { fprintf(stderr, "bad spec %s\n", argv[a]); return 1; }
        char *p = eq + 1;
        while (*p) {
            long v = strtol(p, &p, 0);
            if (addr < 0 || addr >= ITEMS) { fprintf(stderr, "address out of range in %s\n", argv[a]); return 1; }
            switch (area) {
            case 'h': map->tab_registers[addr] = (uint16_t)v; break;
            case 'i': map->tab_input_registers[addr] = (uint16_t)v; break;
            case 'c': map->tab_bits[addr] = v ? 1 : 0; break;
            case 'd': map->tab_input_bits[addr] = v ? 1 : 0; break;
            default: fprintf(stderr, "bad area %c\n", area); return 1;
            }
            addr++;
            if (*p == ',') p++;
        }
    }
    int server = modbus_tcp_listen(ctx, 512);
    if (server < 0) { fprintf(stderr, "listen failed: %s\n", modbus_strerror(errno)); return 2; }
    struct sockaddr_in sa; socklen_t len = sizeof sa;
    getsockname(server, (struct sockaddr *)&sa, &len);
    printf("ready %d\n", ntohs(sa.sin_port)); fflush(stdout);
    signal(SIGTERM, on_signal); signal(SIGINT, on_signal); signal(SIGPIPE, SIG_IGN);

    static struct pollfd fds[MAXFD];
    int nfds = 1; fds[0].fd = server; fds[0].events = POLLIN;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    while (!stop_flag) {
        int rc = poll(fds, nfds, 200);
        if (rc < 0) { if (errno == EINTR) continue; break; }
        if (fds[0].revents & POLLIN) {
            int c = accept(server, NULL, NULL);
            if (c >= 0) { if (nfds < MAXFD) { fds[nfds].fd = c; fds[nfds].events = POLLIN; fds[nfds].revents = 0; nfds++; } else close(c); }
        }
        for (int i = 1; i < nfds; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            modbus_set_socket(ctx, fds[i].fd);
            int n = modbus_receive(ctx, query);
            if (n > 0) {
                modbus_reply(ctx, query, n, map);
            } else if (n < 0) {
                close(fds[i].fd);
                fds[i] = fds[nfds - 1]; nfds--; i--;
            }
        }
    }
    for (int i = 1; i < nfds; i++) close(fds[i].fd);
    close(server);
    modbus_mapping_free(map); modbus_free(ctx);
    return 0;
}
