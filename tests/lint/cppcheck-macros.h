/* cppcheck-macros.h - the iteration macros of jansson.h, for cppcheck only.
 * cppcheck does not read system headers (and would be slow if it did); without these
 * it stops at the first json_*_foreach as an unknown macro. */
#define json_array_foreach(array, index, value)                                                   \
	for (index = 0; index < json_array_size(array) && (value = json_array_get(array, index)); \
	     index++)
#define json_object_foreach(object, key, value)                                                   \
	for (key = json_object_iter_key(json_object_iter(object));                                \
	     key && (value = json_object_iter_value(json_object_key_to_iter(key)));               \
	     key = json_object_iter_key(json_object_iter_next(object, json_object_key_to_iter(key))))
