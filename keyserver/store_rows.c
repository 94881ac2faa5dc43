/* store_rows.c - a query's rows into an array of structs; see store.h. */
#include <stdlib.h>

#include "store.h"

int ks_store_rows_fill(PGresult *res, size_t elem_size, ks_store_fill_fn fill, void *arg, void **v,
                       size_t *n, struct err *e)
{
	size_t rows = (size_t)PQntuples(res);
	char *a = NULL;

	*v = NULL;
	*n = 0;
	if (rows > 0 && (a = calloc(rows, elem_size)) == NULL)
		return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	*v = a;
	for (size_t i = 0; i < rows; i++) {
		*n = i + 1; /* a failed fill may leave its element half filled */
		if (fill(res, (int)i, a + i * elem_size, arg) < 0)
			return err_set(e, ERR_INTERNAL, "internal", "out of memory");
	}
	return 0;
}
