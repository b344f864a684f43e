def clinic_of(request):
    """The tests' TENANT_RESOLVER: the clinic of the user's staff record, None for anyone else."""
    staff = getattr(request.user, "staff", None) if request.user.is_authenticated else None
    return staff and staff.clinic_id
