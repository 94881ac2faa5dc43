/* ipaddr.c - private and public IP literals; see ipaddr.h. */
#include "core/ipaddr.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

static int v4_private(const unsigned char a[4])
{
	uint32_t v = ((uint32_t)a[0] << 24) | ((uint32_t)a[1] << 16) | ((uint32_t)a[2] << 8) | a[3];
	static const struct {
		uint32_t net, mask;
	} ranges[] = {
	    {0x00000000u, 0xff000000u}, /* 0/8 "this network" */
	    {0x0a000000u, 0xff000000u}, /* 10/8 */
	    {0x64400000u, 0xffc00000u}, /* 100.64/10 shared */
	    {0x7f000000u, 0xff000000u}, /* 127/8 loopback */
	    {0xa9fe0000u, 0xffff0000u}, /* 169.254/16 link-local */
	    {0xac100000u, 0xfff00000u}, /* 172.16/12 */
	    {0xc0000000u, 0xffffff00u}, /* 192.0.0/24 protocol assignments */
	    {0xc0a80000u, 0xffff0000u}, /* 192.168/16 */
	    {0xc6120000u, 0xfffe0000u}, /* 198.18/15 benchmarking */
	    {0xe0000000u, 0xe0000000u}, /* 224/3 multicast, reserved, broadcast */
	};

	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		if ((v & ranges[i].mask) == ranges[i].net)
			return 1;
	return 0;
}

static int v6_private(const unsigned char a[16])
{
	static const unsigned char zero[16] = {0};
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1)) /* :: and ::1 */
		return 1;
	if (memcmp(a, mapped, 12) == 0)
		return v4_private(a + 12);
	if ((a[0] & 0xfe) == 0xfc) /* fc00::/7 unique local */
		return 1;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10 link-local */
		return 1;
	if (a[0] == 0xff) /* multicast */
		return 1;
	return 0;
}

int ipaddr_is_private(const char *text)
{
	unsigned char buf[16];

	if (text == NULL)
		return -1;
	if (inet_pton(AF_INET, text, buf) == 1)
		return v4_private(buf);
	if (inet_pton(AF_INET6, text, buf) == 1)
		return v6_private(buf);
	return -1;
}
