/* A use-after-free: a list node is freed while a stale pointer to it lives on. The read
 * through that pointer meets the tag mte_free gave the block. */
#include "alloc.h"

struct node {
    u64 value;
    struct node *next;
};

static struct node *make(u64 value, struct node *next)
{
    struct node *n = mte_malloc(sizeof *n);
    n->value = value;
    n->next = next;
    return n;
}

int main(void)
{
    struct node *list = make(3, make(2, make(1, 0)));
    struct node *second = list->next;           /* kept past the free below */
    list->next = second->next;                  /* unlink the second node ... */
    mte_free(second);                           /* ... and free it */
    u64 sum = 0;
    for (struct node *n = list; n; n = n->next)
        sum += n->value;
    print("sum of the list: ");
    print_hex(sum);
    print("\nstale node's value: ");
    print_hex(second->value);                   /* use after free: tag-check fault */
    print("\n");
    return 0;
}
