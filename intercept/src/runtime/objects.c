/*
 * objects.c - what is loaded, and what of it may be patched.
 *
 * Everything comes from memory (dl_iterate_phdr, PT_DYNAMIC) except the
 * section headers, which are not loaded: they tell the executable sections
 * apart from the read-only data that shares the R-X segment (.rodata,
 * .dynsym, .eh_frame...), where the bytes of an ecall may occur as data.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "runtime.h"

#define PAGE 4096UL

struct iter {
	struct gk_object *objs;
	int max, n;
	uint64_t at_base, vdso, self_pc;
	int other_ns;     /* listing a dlmopen namespace: no main program */
};

/* Whether a basename starts with "libc.so" or "libpthread.so".  Both in
 * one loop of a fixed count, which the compiler unrolls into straight
 * code: this runs for every object in every process's constructor, and
 * two early-exit loops (libc's strncmp, or plain ones) are a dozen blocks
 * an emulator translates.  The pointer stops at the name's NUL, so
 * nothing past it is read. */
static int
libc_name(const char *s)
{
	static const char c[13] = "libc.so", pt[13] = "libpthread.so";
	unsigned ok_c = 1, ok_pt = 1;

	for (int i = 0; i < 13; i++) {
		char ch = *s;
		ok_c &= (i >= 7) | (ch == c[i]);
		ok_pt &= ch == pt[i];
		s += ch != '\0';
	}
	return (int)(ok_c | ok_pt);
}

static int
collect(struct dl_phdr_info *info, size_t size, void *data)
{
	struct iter *it = data;
	struct gk_object *o;
	const char *name = info->dlpi_name ? info->dlpi_name : "";
	const char *base;

	if (it->n >= it->max)
		return 1;
	o = &it->objs[it->n];
	_Static_assert(sizeof(*o) % 8 == 0 && _Alignof(struct gk_object) == 8, "zeroed as words");
	gk_zero_words(o, sizeof(*o));
	/* Tests or'ed and minima taken without branches here: this runs for
	 * every object in every process's constructor, and each branch ends
	 * a block an emulator translates. */
	o->is_main = (it->n == 0) & !it->other_ns;
	for (size_t i = 0; i < sizeof(o->path) - 1 && name[i]; i++)
		o->path[i] = name[i];   /* NUL-terminated: o was zeroed */
	o->base = info->dlpi_addr;
	o->phdr = info->dlpi_phdr;
	o->phnum = info->dlpi_phnum;
	o->lo = UINT64_MAX;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *p = &info->dlpi_phdr[i];
		uint64_t load = -(uint64_t)(p->p_type == PT_LOAD);
		uint64_t s = ((o->base + p->p_vaddr) & ~(PAGE - 1)) | ~load;
		uint64_t e = ((o->base + p->p_vaddr + p->p_memsz + PAGE - 1) & ~(PAGE - 1)) & load;
		uint64_t dyn = -(uint64_t)(p->p_type == PT_DYNAMIC);

		o->lo ^= (o->lo ^ s) & -(uint64_t)(s < o->lo);
		o->hi ^= (o->hi ^ e) & -(uint64_t)(e > o->hi);
		o->dyn = (const void *)(((o->base + p->p_vaddr) & dyn) |
		                        ((uint64_t)(uintptr_t)o->dyn & ~dyn));
	}
	o->is_vdso = (it->vdso != 0) & (o->lo == it->vdso);
	o->is_ldso = (it->at_base != 0) & (o->base == it->at_base);
	o->is_self = (it->self_pc >= o->lo) & (it->self_pc < o->hi);
	base = gk_basename(o->path);
	o->is_libc = libc_name(base);
	it->n++;
	return 0;
}

/* The link map of a dlmopen handle: each object's program headers from
 * its ELF header (dladdr's dli_fbase: where its first segment, file
 * offset 0, is mapped), as dl_iterate_phdr would give them. */
int
gk_objects_of_namespace(void *ns_handle, struct gk_object *objs, int n, int max)
{
	struct iter it = {
		.objs = objs, .max = max, .n = n, .other_ns = 1,
		.at_base = getauxval(AT_BASE),
		.vdso = getauxval(AT_SYSINFO_EHDR),
		.self_pc = (uint64_t)(uintptr_t)&gk_objects_find,
	};
	struct link_map *lm = NULL;
	Lmid_t lmid;

	if (dlinfo(ns_handle, RTLD_DI_LMID, &lmid) != 0 || lmid == LM_ID_BASE ||
	    dlinfo(ns_handle, RTLD_DI_LINKMAP, &lm) != 0 || !lm)
		return n;
	while (lm->l_prev)
		lm = lm->l_prev;
	for (; lm; lm = lm->l_next) {
		struct dl_phdr_info info;
		const ElfW(Ehdr) *eh;
		Dl_info dli;

		if (!dladdr((const void *)lm->l_ld, &dli) || !dli.dli_fbase)
			continue;
		eh = dli.dli_fbase;
		if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
			continue;
		memset(&info, 0, sizeof(info));
		info.dlpi_addr = lm->l_addr;
		info.dlpi_name = lm->l_name;
		info.dlpi_phdr = (const ElfW(Phdr) *)((const char *)eh + eh->e_phoff);
		info.dlpi_phnum = eh->e_phnum;
		if (collect(&info, sizeof(info), &it))
			break;
	}
	return it.n;
}

/*
 * The constructor's listing: ld.so's link map walked directly (_r_debug;
 * no lock needed, no other thread exists yet), each object's program
 * headers from its ELF header (the main program's from the auxiliary
 * vector), checked against the link map's own PT_DYNAMIC address.  The
 * same objects in the same order as dl_iterate_phdr gives, which dlopen
 * refreshes keep using (it takes the loader's lock): under an emulator,
 * dl_iterate_phdr with the lock and TLS lookups it brings is some 25
 * blocks of libc and ld.so to translate at every start.  Anything that
 * does not check out (a static program, say): dl_iterate_phdr after all.
 */
extern struct r_debug _r_debug __attribute__((weak));

static int
dynamic_at(const ElfW(Phdr) *ph, int phnum, uint64_t bias, uint64_t ld)
{
	int hit = 0;
	for (int i = 0; i < phnum; i++)
		hit |= (ph[i].p_type == PT_DYNAMIC) & (bias + ph[i].p_vaddr == ld);
	return hit;
}

int
gk_objects_find_early(struct gk_object *objs, int max)
{
	struct iter it = {
		.objs = objs, .max = max,
		.at_base = getauxval(AT_BASE),
		.vdso = getauxval(AT_SYSINFO_EHDR),
		.self_pc = (uint64_t)(uintptr_t)&gk_objects_find,
	};
	const struct link_map *lm = &_r_debug ? _r_debug.r_map : NULL;

	/* the main program's headers from the auxiliary vector */
	const ElfW(Phdr) *main_phdr = (const ElfW(Phdr) *)getauxval(AT_PHDR);
	ElfW(Half) main_phnum = (ElfW(Half))getauxval(AT_PHNUM);

	for (; lm && it.n < max; lm = lm->l_next) {
		struct dl_phdr_info info = {
			.dlpi_addr = lm->l_addr,
			.dlpi_name = lm->l_name,
			.dlpi_phdr = main_phdr,
			.dlpi_phnum = main_phnum,
		};
		if (it.n) {
			const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)lm->l_addr;
			uint32_t magic;
			memcpy(&magic, eh->e_ident, 4);
			if ((magic != *(const uint32_t *)(const void *)ELFMAG) |
			    (eh->e_phentsize != sizeof(ElfW(Phdr))))
				break;
			info.dlpi_phdr = (const ElfW(Phdr) *)(lm->l_addr + eh->e_phoff);
			info.dlpi_phnum = eh->e_phnum;
		}
		if (!info.dlpi_phdr ||
		    !dynamic_at(info.dlpi_phdr, info.dlpi_phnum, lm->l_addr,
		                (uint64_t)(uintptr_t)lm->l_ld))
			break;
		collect(&info, sizeof(info), &it);
	}
	if (lm || it.n == 0)
		return gk_objects_find(objs, max);
	return it.n;
}

int
gk_objects_find(struct gk_object *objs, int max)
{
	struct iter it = {
		.objs = objs, .max = max,
		.at_base = getauxval(AT_BASE),
		.vdso = getauxval(AT_SYSINFO_EHDR),
		.self_pc = (uint64_t)(uintptr_t)&gk_objects_find,
	};
	dl_iterate_phdr(collect, &it);
	return it.n;
}

int
gk_object_exec_segment(const struct gk_object *o, uint64_t s, uint64_t e)
{
	const ElfW(Phdr) *ph = o->phdr;
	for (int i = 0; i < o->phnum; i++) {
		uint64_t ps = o->base + ph[i].p_vaddr;
		if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X) &&
		    s >= ps && e <= ps + ph[i].p_filesz)
			return i;
	}
	return -1;
}

int
gk_object_exec_holds(const struct gk_object *o, uint64_t s, uint64_t e)
{
	return gk_object_exec_segment(o, s, e) >= 0;
}

int
gk_object_segment_prot(const struct gk_object *o, int seg)
{
	const ElfW(Phdr) *p = (const ElfW(Phdr) *)o->phdr + seg;
	return ((p->p_flags & PF_R) ? PROT_READ : 0) |
	       ((p->p_flags & PF_W) ? PROT_WRITE : 0) |
	       ((p->p_flags & PF_X) ? PROT_EXEC : 0);
}

/* The page tail after every executable segment that no other segment
 * shares: [end of the segment rounded up to 4, end of its page). */
int
gk_object_tails(const struct gk_object *o, struct gk_range *out, int max)
{
	const ElfW(Phdr) *ph = o->phdr;
	int n = 0;

	for (int i = 0; i < o->phnum && n < max; i++) {
		uint64_t end, pg_end;
		int clash = 0;

		if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X))
			continue;
		end = o->base + ph[i].p_vaddr + ph[i].p_memsz;
		pg_end = (end + PAGE - 1) & ~(PAGE - 1);
		for (int j = 0; j < o->phnum; j++) {
			uint64_t s = o->base + ph[j].p_vaddr;
			if (j != i && ph[j].p_type == PT_LOAD &&
			    s < pg_end && s + ph[j].p_memsz > end)
				clash = 1;   /* another segment shares the page */
		}
		if (!clash) {
			out[n].start = (end + 3) & ~3UL;
			out[n].end = pg_end;
			n++;
		}
	}
	return n;
}

/* The in-memory ELF header, if the first PT_LOAD maps file offset 0. */
static const ElfW(Ehdr) *
mem_ehdr(const struct gk_object *o)
{
	const ElfW(Phdr) *ph = o->phdr;
	for (int i = 0; i < o->phnum; i++)
		if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0)
			return (const ElfW(Ehdr) *)(o->base + ph[i].p_vaddr);
	return NULL;
}

int
gk_object_text(struct gk_object *o, const char **why)
{
	const char *path = o->is_main ? "/proc/self/exe" : o->path;
	const ElfW(Ehdr) *mem = mem_ehdr(o);
	ElfW(Ehdr) eh;
	ElfW(Shdr) *sh = NULL;
	size_t shlen = 0;
	long fd, n;
	int rc = -1;

	o->ntext = 0;
	fd = GK_RAW(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		*why = "cannot open the file for its section headers";
		return -1;
	}
	n = GK_RAW(SYS_pread64, fd, &eh, sizeof(eh), 0);
	if (n != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_shentsize != sizeof(ElfW(Shdr)) || eh.e_shnum == 0) {
		*why = "no usable section headers";
		goto out;
	}
	/* the file must be the one that was loaded */
	if (!mem || memcmp(mem, &eh, sizeof(eh)) != 0) {
		*why = "file on disk differs from the loaded object";
		goto out;
	}
	shlen = (size_t)eh.e_shnum * sizeof(ElfW(Shdr));
	sh = gk_map(shlen);
	if (!sh || GK_RAW(SYS_pread64, fd, sh, shlen, eh.e_shoff) != (long)shlen) {
		*why = "cannot read section headers";
		goto out;
	}
	for (int i = 0; i < eh.e_shnum; i++) {
		uint64_t s, e;
		if (sh[i].sh_type != SHT_PROGBITS || sh[i].sh_size == 0 ||
		    (sh[i].sh_flags & (SHF_ALLOC | SHF_EXECINSTR)) !=
		        (SHF_ALLOC | SHF_EXECINSTR))
			continue;
		s = o->base + sh[i].sh_addr;
		e = s + sh[i].sh_size;
		if (!gk_object_exec_holds(o, s, e))
			continue;
		if (o->ntext && o->text[o->ntext - 1].end == s) {
			o->text[o->ntext - 1].end = e;   /* exactly adjacent */
		} else if (o->ntext < GK_MAX_TEXT) {
			o->text[o->ntext].start = s;
			o->text[o->ntext].end = e;
			o->ntext++;
		}
	}
	rc = o->ntext ? 0 : -1;
	if (rc)
		*why = "no executable sections";
out:
	gk_unmap(sh, shlen);
	GK_RAW(SYS_close, fd);
	return rc;
}

/* d_ptr values: glibc relocates some in place and leaves others as link
 * addresses (riscv keeps .dynamic read-only in places); accept both. */
static uint64_t
dptr(const struct gk_object *o, uint64_t v)
{
	if (v >= o->lo && v < o->hi)
		return v;
	return v + o->base;
}

static size_t
gnu_hash_count(const uint32_t *h)
{
	uint32_t nbuckets = h[0], symoffset = h[1], bloom = h[2];
	const uint32_t *buckets = h + 4 + bloom * 2;   /* 64-bit bloom words */
	const uint32_t *chain = buckets + nbuckets;
	uint32_t last = 0;

	for (uint32_t i = 0; i < nbuckets; i++)
		if (buckets[i] > last)
			last = buckets[i];
	if (last < symoffset)
		return symoffset;
	while (!(chain[last - symoffset] & 1))
		last++;
	return last + 1;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Addends of RELATIVE relocations (jump tables, function pointers) and
 * IRELATIVE ones (ifunc resolvers) in one relocation table. */
static size_t
rela_targets(const struct gk_object *o, const ElfW(Rela) *rela, size_t bytes,
             uint64_t lo, uint64_t hi, uint64_t *out, size_t n, size_t max)
{
	for (size_t i = 0; rela && i < bytes / sizeof(*rela) && n < max; i++) {
		uint64_t v = o->base + rela[i].r_addend;
		unsigned t = ELF64_R_TYPE(rela[i].r_info);
		if ((t == GK_ARCH_R_RELATIVE || t == GK_ARCH_R_IRELATIVE) &&
		    v >= lo && v < hi)
			out[n++] = v;
	}
	return n;
}

struct dyn_tables {
	const ElfW(Sym) *sym;
	const ElfW(Rela) *rela, *jmprel;
	const uint32_t *gnu, *sysv;
	size_t relasz, pltrelsz;
};

static void
dyn_tables(const struct gk_object *o, struct dyn_tables *t)
{
	const ElfW(Dyn) *d = o->dyn;

	memset(t, 0, sizeof(*t));
	for (; d && d->d_tag != DT_NULL; d++) {
		switch (d->d_tag) {
		case DT_SYMTAB: t->sym = (const void *)dptr(o, d->d_un.d_ptr); break;
		case DT_GNU_HASH: t->gnu = (const void *)dptr(o, d->d_un.d_ptr); break;
		case DT_HASH: t->sysv = (const void *)dptr(o, d->d_un.d_ptr); break;
		case DT_RELA: t->rela = (const void *)dptr(o, d->d_un.d_ptr); break;
		case DT_RELASZ: t->relasz = d->d_un.d_val; break;
		case DT_JMPREL: t->jmprel = (const void *)dptr(o, d->d_un.d_ptr); break;
		case DT_PLTRELSZ: t->pltrelsz = d->d_un.d_val; break;
		}
	}
}

size_t
gk_object_rela_targets(const struct gk_object *o, uint64_t lo, uint64_t hi,
                       uint64_t *out, size_t max)
{
	struct dyn_tables t;
	size_t n;

	dyn_tables(o, &t);
	n = rela_targets(o, t.rela, t.relasz, lo, hi, out, 0, max);
	return rela_targets(o, t.jmprel, t.pltrelsz, lo, hi, out, n, max);
}

size_t
gk_object_targets(const struct gk_object *o, uint64_t lo, uint64_t hi,
                  uint64_t *out, size_t n, size_t max, int *pads_unknown)
{
	struct dyn_tables t;
	size_t nsym = 0, k = 0;
	long pads;

	dyn_tables(o, &t);
	if (t.gnu)
		nsym = gnu_hash_count(t.gnu);
	else if (t.sysv)
		nsym = t.sysv[1];
	for (size_t i = 0; t.sym && i < nsym && n < max; i++) {
		int ty = ELF64_ST_TYPE(t.sym[i].st_info);
		uint64_t v = o->base + t.sym[i].st_value;
		if (t.sym[i].st_shndx != SHN_UNDEF && t.sym[i].st_value &&
		    (ty == STT_FUNC || ty == STT_GNU_IFUNC || ty == STT_NOTYPE) &&
		    v >= lo && v < hi)
			out[n++] = v;
	}
	pads = gk_object_landing_pads(o, lo, hi, out + n, max - n);
	*pads_unknown = pads < 0;
	if (pads > 0)
		n += (size_t)pads;
	qsort(out, n, sizeof(*out), cmp_u64);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || out[k - 1] != out[i])
			out[k++] = out[i];
	return k;
}

/*
 * The relocation table (DT_RELA) of an object whose relocation is done:
 * ld.so applied it before any constructor ran and never reads it again
 * (lazy binding uses DT_JMPREL, a separate table).  When it sits in a
 * non-writable segment it is dead, mapped memory right inside the object,
 * within jal reach of code that nothing else can reach when neighbouring
 * libraries leave no free space around the object.  GNU ld counts
 * .rela.plt (DT_JMPREL, read again by every lazy binding) into DT_RELASZ
 * when it follows .rela.dyn, as it does in most objects: that part is
 * left out (the larger piece on either side of it is kept).
 */
int
gk_object_rela(const struct gk_object *o, uint64_t *start, uint64_t *end)
{
	const ElfW(Dyn) *d = o->dyn;
	const ElfW(Phdr) *ph = o->phdr;
	uint64_t s = 0, len = 0, js = 0, jlen = 0;

	for (; d && d->d_tag != DT_NULL; d++) {
		if (d->d_tag == DT_RELA)
			s = dptr(o, d->d_un.d_ptr);
		else if (d->d_tag == DT_RELASZ)
			len = d->d_un.d_val;
		else if (d->d_tag == DT_JMPREL)
			js = dptr(o, d->d_un.d_ptr);
		else if (d->d_tag == DT_PLTRELSZ)
			jlen = d->d_un.d_val;
	}
	if (js && jlen && js < s + len && s < js + jlen) {
		uint64_t before = js > s ? js - s : 0;
		uint64_t after = s + len > js + jlen ? s + len - (js + jlen) : 0;
		if (before >= after) {
			len = before;
		} else {
			s = js + jlen;
			len = after;
		}
	}
	if (!s || len < 256)
		return -1;
	for (int i = 0; i < o->phnum; i++) {
		uint64_t ps = o->base + ph[i].p_vaddr;
		if (ph[i].p_type == PT_LOAD && !(ph[i].p_flags & PF_W) &&
		    s >= ps && s + len <= ps + ph[i].p_filesz) {
			*start = s;
			*end = s + len;
			return 0;
		}
	}
	return -1;
}
