/* Builds against the installed library with nothing but `pkg-config --cflags --libs
   vzdump-qemu`, and checks the version the loaded library reports. */
#include <stdio.h>
#include <string.h>

#include <vzdump_qemu.h>

int main(void)
{
    const char *v = vzdump_qemu_version();
    vzdump_qemu_peer *peer = NULL;
    char *err = NULL;
    vzdump_qemu_result r = vzdump_qemu_peer_new_path(NULL, &peer, &err);
    int ok = strncmp(v, "vzdump-qemu ", 12) == 0 && r == VZDUMP_QEMU_NULL_PARAMETER && err;
    vzdump_qemu_string_free(err);
    printf("%s: %s\n", v, ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
