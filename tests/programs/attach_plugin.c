/* A library attach_target dlopens after the attach (test_attach.py): its
   allocations reach the agent only if the agent redirected its GOT when it
   was loaded. */
#include <stdlib.h>

static void* blocks[4096];
static int count;

int attach_plugin_alloc(int n) {
    for (count = 0; count < n && count < 4096; ++count) blocks[count] = malloc(40);
    return count;
}

void attach_plugin_free(void) {
    for (int i = 0; i < count; ++i) free(blocks[i]);
    count = 0;
}
