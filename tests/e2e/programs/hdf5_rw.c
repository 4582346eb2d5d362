/*
 * hdf5_rw.c - a small HDF5 program for tests/e2e/test_e2e_posix.py, with
 * HDF5's file locking left on (its default since 1.10: flock on open).
 *
 *   hdf5_rw write FILE        create FILE: group /grp, 2-D int dataset
 *                             /grp/data (64 x 100, value 1000*i + j), a
 *                             double attribute "scale" = 2.5 on it
 *   hdf5_rw read FILE         open read-only and check all of that
 *   hdf5_rw hold FILE READY S open FILE for writing, create READY (a local
 *                             path), keep it open S seconds, close
 * Prints "ok <mode>" and exits 0, or "FAIL ..." and exits 1.
 */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NI 64
#define NJ 100
#define FAIL(...) do { printf("FAIL "); printf(__VA_ARGS__); printf("\n"); exit(1); } while (0)

static int
do_write(const char *path)
{
	static int buf[NI][NJ];
	hsize_t dims[2] = {NI, NJ};
	double scale = 2.5;

	for (int i = 0; i < NI; i++)
		for (int j = 0; j < NJ; j++)
			buf[i][j] = 1000 * i + j;
	hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	if (f < 0)
		FAIL("H5Fcreate %s", path);
	hid_t g = H5Gcreate2(f, "/grp", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	hid_t s = H5Screate_simple(2, dims, NULL);
	hid_t d = H5Dcreate2(g, "data", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	if (g < 0 || s < 0 || d < 0)
		FAIL("create group/dataset");
	if (H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
		FAIL("H5Dwrite");
	hid_t as = H5Screate(H5S_SCALAR);
	hid_t a = H5Acreate2(d, "scale", H5T_IEEE_F64LE, as, H5P_DEFAULT, H5P_DEFAULT);
	if (a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &scale) < 0)
		FAIL("attribute");
	H5Aclose(a); H5Sclose(as); H5Dclose(d); H5Sclose(s); H5Gclose(g);
	if (H5Fclose(f) < 0)
		FAIL("H5Fclose");
	return 0;
}

static int
do_read(const char *path)
{
	static int buf[NI][NJ];
	double scale = 0;

	hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (f < 0)
		FAIL("H5Fopen %s", path);
	hid_t d = H5Dopen2(f, "/grp/data", H5P_DEFAULT);
	if (d < 0 || H5Dread(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
		FAIL("read /grp/data");
	for (int i = 0; i < NI; i++)
		for (int j = 0; j < NJ; j++)
			if (buf[i][j] != 1000 * i + j)
				FAIL("data[%d][%d] = %d", i, j, buf[i][j]);
	hid_t a = H5Aopen(d, "scale", H5P_DEFAULT);
	if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, &scale) < 0 || scale != 2.5)
		FAIL("attribute scale = %g", scale);
	H5Aclose(a); H5Dclose(d);
	if (H5Fclose(f) < 0)
		FAIL("H5Fclose");
	return 0;
}

static int
do_hold(const char *path, const char *ready, int seconds)
{
	hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
	if (f < 0)
		FAIL("H5Fopen rw %s", path);
	FILE *r = fopen(ready, "w");
	if (!r)
		FAIL("create %s", ready);
	fclose(r);
	sleep(seconds);
	if (H5Fclose(f) < 0)
		FAIL("H5Fclose");
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "write"))
		do_write(argv[2]);
	else if (argc >= 3 && !strcmp(argv[1], "read"))
		do_read(argv[2]);
	else if (argc >= 5 && !strcmp(argv[1], "hold"))
		do_hold(argv[2], argv[3], atoi(argv[4]));
	else
		FAIL("usage: hdf5_rw write|read FILE | hold FILE READY SECONDS");
	printf("ok %s\n", argv[1]);
	return 0;
}
