/* A library that allocates: in its constructor, in plugin_build (a list
   of N nodes), and frees in plugin_release and its destructor. Loaded and
   unloaded repeatedly by dlopen_app. */
#include <stdlib.h>

struct node {
    struct node* next;
    long value;
};

static char* g_table;

__attribute__((constructor)) static void plugin_init(void) { g_table = malloc(4096); }
__attribute__((destructor)) static void plugin_fini(void) { free(g_table); }

struct node* plugin_build(long n) {
    struct node* head = NULL;
    for (long i = 0; i < n; ++i) {
        struct node* x = malloc(sizeof *x);
        x->next = head;
        x->value = i;
        head = x;
    }
    return head;
}

long plugin_sum(const struct node* head) {
    long s = 0;
    for (; head; head = head->next) s += head->value;
    return s;
}

void plugin_release(struct node* head) {
    while (head) {
        struct node* next = head->next;
        free(head);
        head = next;
    }
}
